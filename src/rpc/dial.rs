//! Where to dial an address another component advertised. In a deployment, the address itself;
//! in the lab, a proxy the lab owns for that link, so it can cut, hold or slow it (DESIGN §13).

use std::sync::Arc;

/// How long dialing a broker may take before the attempt counts as failed (brokers and clients
/// alike; a request then looks for the leader again).
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Maps an advertised `host:port` to the `host:port` to connect to. The default dials the
/// advertised address itself. Configs carry it so that brokers and clients need no other hook.
#[derive(Clone, Default)]
pub struct Dialer(Option<Arc<dyn Fn(&str) -> String + Send + Sync>>);

impl Dialer {
    /// A dialer that asks `map` for every address.
    pub fn new(map: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(map)))
    }

    /// The address to connect to for `advertised` (borrowed when it is the same: this runs for
    /// every request).
    pub fn dial<'a>(&self, advertised: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.0 {
            Some(map) => std::borrow::Cow::Owned(map(advertised)),
            None => std::borrow::Cow::Borrowed(advertised),
        }
    }
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Dialer(mapped)"
        } else {
            "Dialer(direct)"
        })
    }
}

/// Dialers never make two configurations differ: they are wiring, not settings.
impl PartialEq for Dialer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dials_the_advertised_address_and_a_map_rewrites_it() {
        assert_eq!(Dialer::default().dial("127.0.0.1:9"), "127.0.0.1:9");
        let d = Dialer::new(|a| format!("proxy-for-{a}"));
        assert_eq!(d.dial("127.0.0.1:9"), "proxy-for-127.0.0.1:9");
    }
}
