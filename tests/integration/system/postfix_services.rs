//! What every Postfix instance the tests and benchmarks start has in common: the internal
//! services of `master.cf` (Postfix 3.7's stock table; each instance adds its own smtpd
//! listeners) and the base of `main.cf` (its own directories, loopback only, no local domains).

use std::path::Path;

/// The first lines of `main.cf` for an instance living under `base`, named `myhostname` in
/// `mydomain`, with `myorigin`.
pub fn base_main_cf(base: &Path, myhostname: &str, mydomain: &str, myorigin: &str) -> String {
    let b = base.display();
    format!(
        "compatibility_level = 3.6
queue_directory = {b}/queue
data_directory = {b}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {myhostname}
mydomain = {mydomain}
myorigin = {myorigin}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
"
    )
}

/// The stock internal services; with `chroot_smtp`, the `smtp` client runs chrooted in the queue
/// directory (so that it reads the queue directory's `etc/resolv.conf`).
pub fn internal_services(chroot_smtp: bool) -> String {
    let smtp_chroot = if chroot_smtp { "y" } else { "n" };
    format!(
        "pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       {smtp_chroot}       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
    )
}
