//! How the console lays itself out beyond its defaults: one panel zoomed to the whole body (`z`,
//! `zoom PANEL`), and the events panel scrolled back (PgUp/PgDn) and filtered (`/b2`, `/p0`,
//! `/b2 p0`, `/words`; `/` alone clears).

use crate::events::Event;

/// A panel that can take the whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// The brokers table.
    Brokers,
    /// The replicas table, or the log strips when open.
    Replicas,
    /// The partitions as ZooKeeper says.
    Partitions,
    /// The events.
    Events,
}

impl Panel {
    const ORDER: [Panel; 4] = [
        Panel::Brokers,
        Panel::Replicas,
        Panel::Partitions,
        Panel::Events,
    ];

    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "brokers" => Panel::Brokers,
            "replicas" | "log" => Panel::Replicas,
            "partitions" => Panel::Partitions,
            "events" => Panel::Events,
            _ => return None,
        })
    }
}

/// Which events the panel shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this broker's.
    pub broker: Option<u32>,
    /// Only this partition's.
    pub partition: Option<u32>,
    /// Only those whose text holds these words (case-insensitive).
    pub words: Vec<String>,
}

impl EventFilter {
    /// `b2 p0 words...`
    pub fn parse(text: &str) -> Self {
        let mut f = EventFilter::default();
        for w in text.split_whitespace() {
            let num = |prefix: char| w.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok());
            if let Some(b) = num('b') {
                f.broker = Some(b);
            } else if let Some(p) = num('p') {
                f.partition = Some(p);
            } else {
                f.words.push(w.to_lowercase());
            }
        }
        f
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        self.broker.is_none_or(|b| e.broker == Some(b))
            && self.partition.is_none_or(|p| e.partition == Some(p))
            && (self.words.is_empty() || {
                let m = e.message.to_lowercase();
                self.words.iter().all(|w| m.contains(w))
            })
    }

    /// How the panel's title names it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.broker {
            parts.push(format!("b{b}"));
        }
        if let Some(p) = self.partition {
            parts.push(format!("p{p}"));
        }
        parts.extend(self.words.iter().cloned());
        parts.join(" ")
    }
}

/// The console's layout choices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The panel given the whole body, if any.
    pub zoom: Option<Panel>,
    /// Events skipped back from the newest (PgUp scrolls back).
    pub events_back: usize,
    /// The events filter, if any.
    pub filter: Option<EventFilter>,
}

/// Events one PgUp/PgDn moves.
pub const PAGE: usize = 10;

impl View {
    /// `z`: the next panel zoomed, then none.
    pub fn cycle_zoom(&mut self) {
        let next = match self.zoom {
            None => Some(0),
            Some(p) => Panel::ORDER
                .iter()
                .position(|&x| x == p)
                .map(|i| i + 1)
                .filter(|&i| i < Panel::ORDER.len()),
        };
        self.zoom = next.map(|i| Panel::ORDER[i]);
    }

    /// PgUp (`back`) or PgDn.
    pub fn scroll(&mut self, back: bool) {
        self.events_back = if back {
            self.events_back + PAGE
        } else {
            self.events_back.saturating_sub(PAGE)
        };
    }

    /// The console's own `zoom ...` and `/filter` commands; `None` when `line` is neither.
    pub fn command(&mut self, line: &str) -> Option<Result<String, String>> {
        if let Some(rest) = line.strip_prefix('/') {
            self.events_back = 0;
            let f = EventFilter::parse(rest);
            return Some(Ok(if f == EventFilter::default() {
                self.filter = None;
                "events: all shown".into()
            } else {
                let d = f.describe();
                self.filter = Some(f);
                format!("events: only {d} ('/' alone shows all)")
            }));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["zoom", rest @ ..] = words.as_slice() else {
            return None;
        };
        Some(match rest {
            [] => {
                self.cycle_zoom();
                Ok(self.zoom_said())
            }
            ["off"] => {
                self.zoom = None;
                Ok(self.zoom_said())
            }
            [p] => match Panel::parse(p) {
                Some(p) => {
                    self.zoom = Some(p);
                    Ok(self.zoom_said())
                }
                None => Err(format!(
                    "no panel '{p}'; zoom brokers|replicas|log|partitions|events|off"
                )),
            },
            _ => Err("usage: zoom [brokers|replicas|log|partitions|events|off]".into()),
        })
    }

    fn zoom_said(&self) -> String {
        match self.zoom {
            Some(p) => format!("zoomed on {p:?} (z or 'zoom off' to go back)").to_lowercase(),
            None => "every panel shown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn ev(broker: Option<u32>, partition: Option<u32>, message: &str) -> Event {
        Event {
            at_ms: 0,
            broker,
            partition,
            kind: EventKind::Info,
            message: message.into(),
        }
    }

    #[test]
    fn a_filter_picks_a_broker_a_partition_and_words() {
        let f = EventFilter::parse("b2 p0 ISR");
        assert!(f.matches(&ev(Some(2), Some(0), "ISR shrank")));
        assert!(!f.matches(&ev(Some(1), Some(0), "ISR shrank")));
        assert!(!f.matches(&ev(Some(2), Some(1), "ISR shrank")));
        assert!(!f.matches(&ev(Some(2), Some(0), "became leader")));
        assert_eq!(f.describe(), "b2 p0 isr");
        let mut v = View::default();
        assert!(v.command("/p1").is_some_and(|r| r.is_ok()));
        assert_eq!(v.filter.as_ref().and_then(|f| f.partition), Some(1));
        v.command("/");
        assert_eq!(v.filter, None);
    }

    #[test]
    fn zoom_cycles_through_the_panels_and_back() {
        let mut v = View::default();
        let mut seen = Vec::new();
        for _ in 0..5 {
            v.cycle_zoom();
            seen.push(v.zoom);
        }
        assert_eq!(
            seen,
            [
                Some(Panel::Brokers),
                Some(Panel::Replicas),
                Some(Panel::Partitions),
                Some(Panel::Events),
                None
            ]
        );
        assert!(v.command("zoom events").is_some_and(|r| r.is_ok()));
        assert_eq!(v.zoom, Some(Panel::Events));
        assert!(v.command("zoom frob").is_some_and(|r| r.is_err()));
        assert!(v.command("zoom off").is_some_and(|r| r.is_ok()));
        assert_eq!(v.zoom, None);
        assert!(v.command("get k").is_none());
    }

    #[test]
    fn paging_never_goes_past_the_newest() {
        let mut v = View::default();
        v.scroll(true);
        v.scroll(true);
        assert_eq!(v.events_back, 2 * PAGE);
        v.scroll(false);
        v.scroll(false);
        v.scroll(false);
        assert_eq!(v.events_back, 0);
    }
}
