//! Drawing the console from an [`App`] and a [`LabSnapshot`]. Nothing here blocks or talks to the
//! network: it only reads what the lab last published.

mod activity;
mod cluster;
pub mod log;
mod shell;
mod theme;

use super::app::{App, Focus};
use super::view::Panel;
use crate::lab::LabSnapshot;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

/// Smallest terminal the console draws into.
pub const MIN_WIDTH: u16 = 80;
/// Smallest terminal height the console draws into.
pub const MIN_HEIGHT: u16 = 20;

/// Background of a row where a broker's belief disagrees with ZooKeeper.
pub use theme::DISAGREE_BG;

fn ids(v: &[u32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn block(title: &str, focused: bool) -> Block<'_> {
    let style = if focused {
        Style::new().fg(theme::ACCENT).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(theme::MUTED)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(
            format!(" {title} "),
            Style::new().add_modifier(Modifier::BOLD),
        ))
}

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App, snap: &LabSnapshot) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = Paragraph::new(vec![
            Line::from(format!(
                "Terminal too small: {}x{}.",
                area.width, area.height
            )),
            Line::from(format!(
                "Make it at least {MIN_WIDTH}x{MIN_HEIGHT}; Ctrl-C quits."
            )),
        ])
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
        frame.render_widget(msg, area);
        return;
    }
    let [header, body, shell, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(8),
        Constraint::Length(shell_height(area.height, app.script.is_some())),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app, snap);
    let main = |frame: &mut Frame, at: Rect| match app.log.partition {
        Some(p) => log::draw_log(frame, at, snap, p, &app.log.cuts),
        None => cluster::draw_replicas(frame, at, snap),
    };
    match app.view.zoom {
        Some(Panel::Brokers) => cluster::draw_brokers(frame, body, app, snap),
        Some(Panel::Replicas) => main(frame, body),
        Some(Panel::Partitions) => cluster::draw_partitions(frame, body, snap),
        Some(Panel::Events) => activity::draw_events(frame, body, app, snap),
        None => {
            let [left, right] = Layout::horizontal([
                Constraint::Length(left_width(body.width)),
                Constraint::Min(20),
            ])
            .areas(body);
            let brokers_h = (snap.brokers.len() as u16 + 3).min(left.height / 2);
            let [brokers, replicas] =
                Layout::vertical([Constraint::Length(brokers_h), Constraint::Min(3)]).areas(left);
            cluster::draw_brokers(frame, brokers, app, snap);
            main(frame, replicas);
            let parts_h = (snap.partitions.len() as u16 + 3).min(right.height / 2);
            let spark_h = if right.height < 16 { 3 } else { 4 };
            let [parts, throughput, events] = Layout::vertical([
                Constraint::Length(parts_h),
                Constraint::Length(spark_h),
                Constraint::Min(3),
            ])
            .areas(right);
            cluster::draw_partitions(frame, parts, snap);
            activity::draw_throughput(frame, throughput, snap);
            activity::draw_events(frame, events, app, snap);
        }
    }
    if app.script.is_some() {
        let [script, sh] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(shell);
        shell::draw_script(frame, script, app, app.focus == Focus::Script);
        shell::draw_shell(frame, sh, app);
    } else {
        shell::draw_shell(frame, shell, app);
    }
    draw_footer(frame, footer, app);
    if app.show_help {
        draw_help(frame, area, app.help_scroll);
    }
}

/// Rows of the shell panel: ten (twelve beside a scenario) on a tall terminal, a quarter of a
/// short one (at least five).
pub fn shell_height(height: u16, script: bool) -> u16 {
    let base = if height >= 36 {
        10
    } else {
        (height / 4).max(5)
    };
    base + if script { 2 } else { 0 }
}

/// Width of the left column (brokers, replicas): 60 %, but no more than its tables use, so a
/// wide terminal gives the rest to the events.
pub fn left_width(width: u16) -> u16 {
    (width * 3 / 5).min(112)
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App, snap: &LabSnapshot) {
    let i = &snap.info;
    let data = if i.data_kept {
        format!("data {}", i.data_dir.display())
    } else {
        format!("data {} (deleted on exit)", i.data_dir.display())
    };
    let redis = snap
        .brokers
        .iter()
        .find_map(|b| b.resp_port)
        .map_or(String::new(), |p| format!(" · redis-cli -p {p}"));
    let text = format!(
        " SimpleKV lab · {} brokers · {} partitions · RF {} · min ISR {}{} · ZooKeeper {}{redis} · {data} · {} ",
        i.spec.brokers,
        i.spec.partitions,
        i.spec.replication_factor,
        i.spec.min_insync_replicas,
        if i.spec.unclean_leader_election {
            " · UNCLEAN election on"
        } else {
            ""
        },
        match snap.zk_servers.len() {
            n if n > 1 => format!("ensemble of {n}"),
            _ => i.zk.clone(),
        },
        i.peers_label(),
    );
    // A replay and the faults in force take the bar first: nobody should mistake the past for
    // the present, or miss that the network is cut.
    let warning = |t: String| {
        Span::styled(
            t,
            Style::new()
                .fg(theme::ON_ACCENT)
                .bg(theme::WARN)
                .add_modifier(Modifier::BOLD),
        )
    };
    let mut spans = Vec::new();
    if let Some(r) = &app.replay_title {
        spans.push(warning(r.clone()));
    }
    if !snap.faults.is_empty() {
        spans.push(warning(format!(" FAULTS: {} ", snap.faults.join(" · "))));
    }
    spans.push(Span::styled(
        text,
        Style::new().fg(theme::ON_ACCENT).bg(theme::ACCENT),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let keys = match app.focus {
        Focus::Shell => {
            " Enter run · ↑/↓ history · Tab brokers · F1 help · quit or Ctrl-C to leave "
        }
        Focus::Brokers => {
            " ↑/↓ select · k kill · r restore · p/u pause/resume · x power-loss · w wipe · i isolate · h heal · l log · ? help · q quit "
        }
        Focus::Script => " space next step · a autoplay · l log · Tab shell · ? help · q quit ",
    };
    frame.render_widget(
        Paragraph::new(keys).style(Style::new().fg(theme::MUTED)),
        area,
    );
    let rate = format!(" {} frames/s ", app.frames.drawn_last_second());
    frame.render_widget(
        Paragraph::new(rate)
            .style(Style::new().fg(theme::MUTED))
            .alignment(ratatui::layout::Alignment::Right),
        area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect, scroll: u16) {
    let w = area.width.min(96);
    let h = area.height.min(60);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let mut lines = vec![
        Line::styled("Keys", Style::new().add_modifier(Modifier::BOLD)),
        Line::from("  Tab            switch between the shell and the brokers table"),
        Line::from("  k / r          (brokers table) kill / restore the selected broker"),
        Line::from("  p / u · x · w  (brokers table) pause / resume · power-loss · wipe it"),
        Line::from("  i / h          (brokers table) isolate it · heal every link"),
        Line::from(
            "  l · Esc        (brokers table, scenario) log strips of the next partition · close them",
        ),
        Line::from("  show log P     (shell) the log strips of partition P · show log off"),
        Line::from(
            "  z              (brokers table, scenario) zoom: one panel takes the screen, in turn",
        ),
        Line::from("  PgUp / PgDn    scroll the events back / forward"),
        Line::from(
            "  /b2 p0 words   (shell) show only these events; / alone shows all · zoom PANEL|off",
        ),
        Line::from(
            "  [ / ]          replay: one change back / forward (in the shell when the line is empty)",
        ),
        Line::from("  { / }          replay: 5 s back / forward (Shift+[ / Shift+])"),
        Line::from("  Home / End     replay: the start / back to live (`live` in the shell too)"),
        Line::from("  ↑ / ↓          shell history, or select a broker"),
        Line::from("  space, a       (scenario panel) next step, autoplay on/off; F5 anywhere"),
        Line::from("  F1 or ?        this help · q (brokers table), quit or Ctrl-C to leave"),
        Line::from(""),
        Line::styled("Commands", Style::new().add_modifier(Modifier::BOLD)),
    ];
    lines.extend(
        crate::command::HELP
            .lines()
            .map(|l| Line::from(format!("  {l}"))),
    );
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "↑/↓ PgUp/PgDn scroll · any other key closes this help",
        Style::new().fg(theme::MUTED),
    ));
    // Never scrolled past its end: the last lines stay in view.
    let rows = popup.height.saturating_sub(2);
    let inner_w = popup.width.saturating_sub(2).max(1) as usize;
    let total: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_w).max(1))
        .sum();
    // Word wrap may take a few more rows than this count: a tenth more keeps the end in reach.
    let total = (total + total / 10) as u16;
    let scroll = scroll.min(total.saturating_sub(rows));
    let title = if total > rows {
        "Help (↑/↓ for more)"
    } else {
        "Help"
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(block(title, true)),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::BrokerState;
    use crate::lab::snapshot::Role;
    use crate::lab::{LabInfo, PartitionView};
    use crate::tui::fixtures::*;
    use ratatui::style::Color;
    use std::sync::Arc;

    /// Words (with their columns) on row `row` below the title of the panel titled `title`, within
    /// that panel's borders.
    fn panel_words(buf: &ratatui::buffer::Buffer, title: &str, row: u16) -> Vec<(u16, String)> {
        let (tx, ty) = find(buf, title).expect("panel title");
        let left = tx - 2;
        let right = (tx..buf.area.width)
            .find(|&x| buf[(x, ty)].symbol() == "┐")
            .expect("panel corner");
        let y = ty + row;
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut start = 0;
        for x in left + 1..right {
            let sym = buf[(x, y)].symbol();
            if sym.trim().is_empty() {
                if !cur.is_empty() {
                    words.push((start, std::mem::take(&mut cur)));
                }
            } else {
                if cur.is_empty() {
                    start = x;
                }
                cur.push_str(sym);
            }
        }
        if !cur.is_empty() {
            words.push((start, cur));
        }
        words
    }

    const PARTITIONS: &str = "Partitions — as ZooKeeper says";
    const REPLICAS: &str = "Replicas — as each broker believes";

    #[test]
    fn a_healthy_cluster_shows_leaders_isr_and_the_controller() {
        let buf = render(&App::new(), &healthy(), 160, 48);
        let lines = text(&buf);
        assert!(
            lines[0].contains("3 brokers · 1 partitions · RF 3 · min ISR 2"),
            "{}",
            lines[0]
        );
        assert!(find(&buf, "★ epoch 1").is_some());
        assert!(find(&buf, "1,2,3").is_some());
        assert!(find(&buf, "simplekv>").is_some());
    }

    #[test]
    fn a_leader_change_shows_the_new_leader_and_epoch() {
        let mut snap = healthy();
        snap.partitions[0].leader = Some(2);
        snap.partitions[0].leader_epoch = 3;
        snap.brokers[1] = broker(2, vec![replica(0, Role::Leader, 3, 12)]);
        snap.brokers[0] = broker(1, vec![replica(0, Role::Follower { leader: 2 }, 3, 12)]);
        snap.brokers[2] = broker(3, vec![replica(0, Role::Follower { leader: 2 }, 3, 12)]);
        let buf = render(&App::new(), &snap, 160, 48);
        let words: Vec<String> = panel_words(&buf, PARTITIONS, 2)
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(
            words[..3],
            ["0", "2", "3"],
            "p 0, leader 2, epoch 3: {words:?}"
        );
        assert!(find(&buf, "follow 2").is_some());
    }

    #[test]
    fn a_killed_broker_is_down_with_its_session_lingering() {
        let mut snap = healthy();
        snap.brokers[1].state = BrokerState::DownSessionLingering;
        snap.brokers[1].snapshot = None;
        let buf = render(&App::new(), &snap, 160, 48);
        let (x, y) = find(&buf, "down (session lingering)").expect("broker 2 shown down");
        assert_eq!(buf[(x, y)].fg, Color::Yellow);
        assert!(find(&buf, "its session lingers in ZooKeeper").is_some());
        snap.brokers[1].state = BrokerState::Down;
        let buf = render(&App::new(), &snap, 160, 48);
        assert!(find(&buf, "down (session lingering)").is_none());
        let (x, y) = find(&buf, "down").expect("down");
        assert_eq!(buf[(x, y)].fg, Color::Red);
    }

    #[test]
    fn an_isr_shrink_marks_the_isr_and_the_lagging_replica() {
        let mut snap = healthy();
        snap.partitions[0].isr = vec![1, 3];
        let buf = render(&App::new(), &snap, 160, 48);
        let words = panel_words(&buf, PARTITIONS, 2);
        let (x, w) = &words[3];
        assert_eq!(w, "1,3");
        assert_eq!(
            buf[(*x, 2 + find(&buf, PARTITIONS).expect("panel").1)].fg,
            Color::Yellow,
            "ISR below RF"
        );
        // Broker 2's replica row says it is out of the ISR.
        let row = (1..=4)
            .map(|r| panel_words(&buf, REPLICAS, r))
            .find(|w| w.get(1).is_some_and(|(_, b)| b == "2"))
            .expect("broker 2's row");
        assert_eq!(row.last().map(|(_, w)| w.as_str()), Some("no"), "{row:?}");

        snap.partitions[0].isr = vec![1];
        let buf = render(&App::new(), &snap, 160, 48);
        let (x, w) = panel_words(&buf, PARTITIONS, 2)[3].clone();
        assert_eq!(w, "1");
        assert_eq!(
            buf[(x, 2 + find(&buf, PARTITIONS).expect("panel").1)].fg,
            Color::Red,
            "ISR below min.insync"
        );
    }

    #[test]
    fn a_broker_that_disagrees_with_zookeeper_is_highlighted() {
        let mut snap = healthy();
        // ZooKeeper moved leadership to broker 2 and broker 3 follows it; broker 1, cut off, has not
        // heard yet and still believes it leads.
        snap.partitions[0].leader = Some(2);
        snap.partitions[0].leader_epoch = 1;
        snap.brokers[1] = broker(2, vec![replica(0, Role::Leader, 1, 10)]);
        snap.brokers[2] = broker(3, vec![replica(0, Role::Follower { leader: 2 }, 1, 10)]);
        let buf = render(&App::new(), &snap, 160, 48);
        let (x, y) = find(&buf, "believes it leads; ZooKeeper says").expect("note");
        assert_eq!(buf[(x, y)].bg, DISAGREE_BG);
        // The whole row is highlighted, from the partition column on.
        let (_, ry) = find(&buf, REPLICAS).expect("panel");
        assert!(y > ry);
        assert_eq!(buf[(1, y)].bg, DISAGREE_BG);
        // Agreeing rows are not.
        let (_, y3) = find(&buf, "follow 2").expect("a follower row");
        assert_ne!(buf[(1, y3)].bg, DISAGREE_BG);
    }

    #[test]
    fn a_small_terminal_gets_a_message_instead_of_a_mess() {
        let buf = render(&App::new(), &healthy(), 60, 15);
        assert!(find(&buf, "Terminal too small: 60x15.").is_some());
        assert!(find(&buf, "Brokers").is_none());
        let buf = render(&App::new(), &healthy(), 80, 20);
        assert!(find(&buf, "Brokers").is_some(), "80x20 is enough");
    }

    #[test]
    fn each_zookeeper_server_and_the_quorum_show_under_the_brokers() {
        use crate::lab::snapshot::ZkMode::*;
        let mut snap = healthy();
        let buf = render(&App::new(), &snap, 160, 40);
        assert!(
            find(&buf, "zk:1").is_none(),
            "an external ZooKeeper shows no servers"
        );
        snap.zk_servers = vec![Follower, Leader, Down];
        let buf = render(&App::new(), &snap, 160, 40);
        assert!(
            text(&buf)[0].contains("ZooKeeper ensemble of 3"),
            "{}",
            text(&buf)[0]
        );
        assert!(
            text(&buf)[0].contains("plaintext peers"),
            "the title bar says the lab's peers speak plaintext: {}",
            text(&buf)[0]
        );
        let (x, y) = find(
            &buf,
            "ZooKeeper zk:1 follower · zk:2 leader · zk:3 down · quorum ✓ (2 of 3 serve)",
        )
        .expect("the ensemble line");
        let (_, brokers_y) = find(&buf, "Brokers").expect("brokers panel");
        assert!(
            y > brokers_y && x < 10,
            "on the brokers panel's bottom border"
        );
        snap.zk_servers = vec![NotServing, Down, Down];
        let buf = render(&App::new(), &snap, 160, 40);
        assert!(
            find(&buf, "NO QUORUM: 0 of 3 serve, 2 needed").is_some(),
            "{}",
            text(&buf).join("\n")
        );
        // 80 columns: abbreviated, still whole.
        snap.zk_servers = vec![Leader, Follower, Down, Follower, Follower];
        let buf = render(&App::new(), &snap, 80, 24);
        assert!(
            find(&buf, "ZK 1L 2F 3✗ 4F 5F quorum ✓").is_some(),
            "{}",
            text(&buf).join("\n")
        );
    }

    #[test]
    fn faults_in_force_are_seen_at_a_glance() {
        let mut snap = healthy();
        let buf = render(&App::new(), &snap, 160, 40);
        assert!(find(&buf, "FAULTS:").is_none());
        snap.brokers[0].state = BrokerState::Paused;
        snap.brokers[1].faults = vec!["cut zk,3".into()];
        snap.faults = vec!["cut 2↔zk".into(), "paused 1".into()];
        let buf = render(&App::new(), &snap, 160, 40);
        assert!(find(&buf, "FAULTS: cut 2↔zk · paused 1").is_some());
        assert!(find(&buf, "PAUSED (frozen)").is_some());
        assert!(find(&buf, "up · cut zk,3").is_some());
    }

    /// Three brokers, three partitions (each led by its first replica), one event.
    fn three_partitions() -> LabSnapshot {
        let mut snap = healthy();
        let spec = crate::coord::ClusterSpec {
            partitions: 3,
            ..snap.info.spec.clone()
        };
        snap.info = Arc::new(LabInfo {
            spec: spec.clone(),
            ..(*snap.info).clone()
        });
        snap.partitions = (0..3)
            .map(|p| PartitionView {
                partition: p,
                leader: Some(p + 1),
                leader_epoch: 0,
                isr: vec![1, 2, 3],
                eligible: Vec::new(),
                replicas: spec.replicas_of(p),
            })
            .collect();
        for b in &mut snap.brokers {
            let id = b.id;
            if let Some(s) = &mut b.snapshot {
                s.replicas = (0..3)
                    .map(|p| {
                        let role = if p + 1 == id {
                            Role::Leader
                        } else {
                            Role::Follower { leader: p + 1 }
                        };
                        replica(p, role, 0, 10)
                    })
                    .collect();
            }
        }
        snap.events.push(crate::events::Event {
            at_ms: 0,
            broker: Some(2),
            partition: Some(1),
            kind: crate::events::EventKind::LeaderElected,
            message: "became leader in epoch 0".into(),
        });
        snap
    }

    #[test]
    fn at_80x24_roles_read_whole_the_events_show_and_zoom_shows_every_replica() {
        let snap = three_partitions();
        let mut app = App::new();
        let buf = render(&app, &snap, 80, 24);
        let lines = text(&buf);
        assert!(find(&buf, "leader").is_some());
        assert!(find(&buf, "fol 1").is_some(), "{}", lines.join("\n"));
        assert!(
            find(&buf, "became leader").is_some(),
            "{}",
            lines.join("\n")
        );
        let isr_rows = lines.iter().filter(|l| l.contains("1,2,3")).count();
        assert_eq!(isr_rows, 3, "every partition's row: {}", lines.join("\n"));
        assert!(find(&buf, "simplekv>").is_some());
        // Zoomed, the replicas table has the body to itself: all nine replicas show.
        app.view.zoom = Some(Panel::Replicas);
        let buf = render(&app, &snap, 80, 24);
        let rows = text(&buf)
            .iter()
            .filter(|l| ["│0 ", "│1 ", "│2 "].iter().any(|p| l.starts_with(p)))
            .count();
        assert_eq!(rows, 9, "{}", text(&buf).join("\n"));
        app.view.zoom = Some(Panel::Events);
        let buf = render(&app, &snap, 80, 24);
        assert!(find(&buf, "b2 p1 became leader in epoch 0").is_some());
    }

    #[test]
    fn at_120x36_every_panel_shows_in_full() {
        let snap = three_partitions();
        let buf = render(&App::new(), &snap, 120, 36);
        let lines = text(&buf).join("\n");
        assert!(find(&buf, "follow 1").is_some(), "{lines}");
        assert!(find(&buf, "vs ZooKeeper").is_some(), "{lines}");
        assert!(find(&buf, "replicas").is_some(), "{lines}");
        assert!(find(&buf, "became leader").is_some(), "{lines}");
        let replica_rows = text(&buf)
            .iter()
            .filter(|l| l.contains("leader   ") || l.contains("follow "))
            .count();
        assert!(replica_rows >= 9, "{lines}");
    }

    #[test]
    fn the_events_panel_filters_and_scrolls() {
        let mut snap = three_partitions();
        for i in 0..30u64 {
            snap.events.push(crate::events::Event {
                at_ms: i,
                broker: Some(1 + (i % 3) as u32),
                partition: Some(0),
                kind: crate::events::EventKind::Info,
                message: format!("event number {i}"),
            });
        }
        let mut app = App::new();
        app.view.zoom = Some(Panel::Events);
        let buf = render(&app, &snap, 120, 36);
        assert!(find(&buf, "event number 29").is_some());
        app.view.scroll(true);
        let buf = render(&app, &snap, 120, 36);
        assert!(find(&buf, "event number 29").is_none());
        assert!(find(&buf, "event number 19").is_some());
        assert!(find(&buf, "10 newer below (PgDn)").is_some());
        app.view.scroll(false);
        app.view.command("/b2");
        let buf = render(&app, &snap, 120, 36);
        assert!(find(&buf, "event number 28").is_some());
        assert!(find(&buf, "event number 29").is_none(), "broker 3's");
        assert!(find(&buf, "only b2").is_some());
    }

    #[test]
    fn at_80x24_the_help_scrolls_to_its_last_line() {
        let mut app = App::new();
        app.show_help = true;
        let buf = render(&app, &healthy(), 80, 24);
        assert!(find(&buf, "Help (↑/↓ for more)").is_some());
        assert!(find(&buf, "history save FILE").is_none(), "below the fold");
        app.help_scroll = 500;
        let buf = render(&app, &healthy(), 80, 24);
        assert!(find(&buf, "history save FILE").is_some());
        assert!(find(&buf, "any other key closes this help").is_some());
    }

    #[test]
    fn the_help_overlay_lists_keys_and_commands() {
        let mut app = App::new();
        app.show_help = true;
        let buf = render(&app, &healthy(), 160, 50);
        assert!(
            find(
                &buf,
                "k / r          (brokers table) kill / restore the selected broker"
            )
            .is_some()
        );
        assert!(find(&buf, "check replicas-agree").is_some());
        assert!(find(&buf, "pause / resume · power-loss · wipe it").is_some());
    }
}
