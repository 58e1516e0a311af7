//! Who may change the brokers' znodes: open to anyone in the lab (no credentials), or only to
//! sessions with the brokers' credentials in a deployment (ZooKeeper's digest and `auth` schemes).

use super::error::{CoordError, Result};
use zookeeper_client as zk;

/// Anyone may read; only a session with the credentials that created a znode may change it
/// (ZooKeeper's `auth` scheme: the creator's digest identity).
static BROKERS_ONLY: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
];

/// Makes `path` changeable only by sessions with this one's credentials, if anyone may change
/// it now (it was made by a session without credentials).
pub(super) async fn close_to_others(client: &zk::Client, path: &str) -> Result<()> {
    let (acl, stat) = client
        .get_acl(path)
        .await
        .map_err(|e| CoordError::from_zk(path, e))?;
    let open = acl
        .iter()
        .any(|a| a.scheme() == "world" && a.permission() != zk::Permission::READ);
    if open {
        match client
            .set_acl(path, &BROKERS_ONLY, Some(stat.aversion))
            .await
        {
            // Another broker closed it first.
            Ok(_) | Err(zk::Error::BadVersion) => {}
            Err(e) => return Err(CoordError::from_zk(path, e)),
        }
    }
    Ok(())
}

/// How a session's znodes are created: open to anyone (no credentials: the lab), or changeable
/// only by sessions with the same credentials (the brokers of a deployment).
pub(super) fn create_options(
    mode: zk::CreateMode,
    restricted: bool,
) -> &'static zk::CreateOptions<'static> {
    use std::sync::LazyLock;
    static OPEN_PERSISTENT: zk::CreateOptions<'static> =
        zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    static OPEN_EPHEMERAL: zk::CreateOptions<'static> =
        zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    static PERSISTENT: LazyLock<zk::CreateOptions<'static>> =
        LazyLock::new(|| zk::CreateMode::Persistent.with_acls(zk::Acls::new(&BROKERS_ONLY)));
    static EPHEMERAL: LazyLock<zk::CreateOptions<'static>> =
        LazyLock::new(|| zk::CreateMode::Ephemeral.with_acls(zk::Acls::new(&BROKERS_ONLY)));
    match (mode, restricted) {
        (zk::CreateMode::Ephemeral, false) => &OPEN_EPHEMERAL,
        (zk::CreateMode::Ephemeral, true) => &EPHEMERAL,
        (_, false) => &OPEN_PERSISTENT,
        (_, true) => &PERSISTENT,
    }
}
