//! The console's colours, by what they mean, so a panel says "bad" rather than "red" and the
//! palette changes in one place.

use ratatui::style::Color;

/// Healthy: up, leading, in sync, restored, writes flowing.
pub const GOOD: Color = Color::Green;
/// Broken: down, offline, fenced, an error, a kill.
pub const BAD: Color = Color::Red;
/// Attention: a lingering session, out of the ISR, an ISR shrink, a command running.
pub const WARN: Color = Color::Yellow;
/// Focus and identity: the focused panel, the title bar, what the user typed, eligible leaders.
pub const ACCENT: Color = Color::Cyan;
/// Background detail: info lines, times, finished steps, the footer.
pub const MUTED: Color = Color::DarkGray;
/// What a class should notice: truncations, notes.
pub const HIGHLIGHT: Color = Color::Magenta;
/// ZooKeeper session changes.
pub const SESSION: Color = Color::Blue;
/// Text drawn on an accent or warning background.
pub const ON_ACCENT: Color = Color::Black;
/// Background of a row that disagrees with ZooKeeper.
pub const DISAGREE_BG: Color = Color::Yellow;
