//! USER resolution by parsing the image's `/etc/passwd` and `/etc/group` as data.
//!
//! Threats §2.1 #15 (CVE-2019-14271): the builder must never call `getpwnam`/NSS inside the image,
//! because that loads the image's `libnss_*.so` into a privileged process. These functions only
//! read text. The semantics follow Docker (runc's `user.GetExecUser`, which moby and BuildKit use):
//!
//! - `""` is root (uid 0, gid 0, home `/`), with root's supplementary groups;
//! - a numeric user is always a uid; if `/etc/passwd` has no entry for it, the gid is 0 unless given
//!   and the home is `/`; a name must exist in `/etc/passwd`;
//! - `user:group` sets the primary group explicitly (a numeric group is always a gid; a name must exist
//!   in `/etc/group`) and then there are no supplementary groups;
//! - otherwise the supplementary groups are the groups that list the matched user *name* as a member.
//!
//! Deviation, on purpose: runc's parser turns a malformed uid/gid field into 0 (`strconv.Atoi`
//! error ignored). Resolving `USER app` to root because of a typo is a privilege escalation (§2.7 #42
//! asks to validate `User`), so a malformed id in an entry that is *used* is an error here.

use thiserror::Error;

/// Largest uid/gid accepted (runc's `maxID`, `1<<31 - 1`).
const MAX_ID: u64 = (1 << 31) - 1;

/// The credentials a RUN step executes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (`setgroups`), in `/etc/group` order.
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd` (`/` when there is no entry); becomes `$HOME` when the
    /// environment does not set it, as runc does.
    pub home: String,
}

/// Why a `USER` (or `--chown`) value cannot be resolved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {name:?}: no matching entries in the image's /etc/passwd")]
    UnknownUser { name: String },
    #[error("unable to find group {name:?}: no matching entries in the image's /etc/group")]
    UnknownGroup { name: String },
    #[error("invalid {what} {value:?} in USER {spec:?}: ids must be between 0 and {MAX_ID}")]
    IdOutOfRange {
        spec: String,
        what: &'static str,
        value: String,
    },
    #[error("malformed {file} entry for {name:?}: {field} {value:?} is not a number (line {line})")]
    MalformedEntry {
        file: &'static str,
        name: String,
        field: &'static str,
        value: String,
        line: usize,
    },
    #[error("invalid USER {spec:?}: expected user, uid, user:group or uid:gid")]
    InvalidSpec { spec: String },
}

/// One parsed `/etc/passwd` line (man 5 passwd).
struct PasswdEntry<'a> {
    name: &'a str,
    uid: &'a str,
    gid: &'a str,
    home: &'a str,
    line: usize,
}

/// One parsed `/etc/group` line (man 5 group).
struct GroupEntry<'a> {
    name: &'a str,
    gid: &'a str,
    members: &'a str,
    line: usize,
}

/// Resolves a Docker `USER` value (`name`, `uid`, `name:group`, `uid:gid`) against the image's
/// `/etc/passwd` and `/etc/group` contents (empty strings when the files are absent).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser, UserError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((_, g)) if g.contains(':') => {
            return Err(UserError::InvalidSpec {
                spec: spec.to_owned(),
            });
        }
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_arg.is_empty() && group_arg.is_some() {
        return Err(UserError::InvalidSpec {
            spec: spec.to_owned(),
        });
    }
    let group_arg = group_arg.filter(|g| !g.is_empty());
    let numeric_uid = parse_numeric(spec, "uid", user_arg)?;
    let numeric_gid = match group_arg {
        Some(g) => parse_numeric(spec, "gid", g)?,
        None => None,
    };

    // The empty USER means "the current state", which for a container is root.
    let matched = passwd_entries(passwd).find(|e| match (user_arg, numeric_uid) {
        ("", _) => e.uid.trim() == "0",
        (_, Some(uid)) => parse_id(e.uid) == Some(uid),
        (name, None) => e.name == name,
    });

    let mut resolved = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".to_owned(),
    };
    let mut matched_name = None;
    match matched {
        Some(entry) => {
            resolved.uid = entry_id("/etc/passwd", entry.name, "uid", entry.uid, entry.line)?;
            resolved.gid = entry_id("/etc/passwd", entry.name, "gid", entry.gid, entry.line)?;
            resolved.home = entry.home.to_owned();
            matched_name = Some(entry.name);
        }
        None => match numeric_uid {
            Some(uid) => resolved.uid = uid,
            None if user_arg.is_empty() => {}
            None => {
                return Err(UserError::UnknownUser {
                    name: user_arg.to_owned(),
                });
            }
        },
    }

    match group_arg {
        Some(group_name) => {
            let found = group_entries(group).find(|g| match numeric_gid {
                Some(gid) => parse_id(g.gid) == Some(gid),
                None => g.name == group_name,
            });
            resolved.gid = match (found, numeric_gid) {
                (Some(entry), _) => {
                    entry_id("/etc/group", entry.name, "gid", entry.gid, entry.line)?
                }
                (None, Some(gid)) => gid,
                (None, None) => {
                    return Err(UserError::UnknownGroup {
                        name: group_name.to_owned(),
                    });
                }
            };
        }
        None => {
            if let Some(name) = matched_name {
                for entry in group_entries(group) {
                    if entry.members.split(',').any(|m| m.trim() == name) {
                        let gid = entry_id("/etc/group", entry.name, "gid", entry.gid, entry.line)?;
                        resolved.additional_gids.push(gid);
                    }
                }
            }
        }
    }
    Ok(resolved)
}

/// Lines of a colon-separated database, skipping blanks, comments and NIS `+`/`-` includes
/// (which refer to a directory service the builder must not consult).
fn records(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        let skip = line.is_empty()
            || line.starts_with('#')
            || line.starts_with('+')
            || line.starts_with('-');
        (!skip).then(|| (i + 1, line.split(':').collect()))
    })
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).map(|(line, f)| PasswdEntry {
        name: f.first().copied().unwrap_or(""),
        uid: f.get(2).copied().unwrap_or(""),
        gid: f.get(3).copied().unwrap_or(""),
        home: f.get(5).copied().unwrap_or(""),
        line,
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).map(|(line, f)| GroupEntry {
        name: f.first().copied().unwrap_or(""),
        gid: f.get(2).copied().unwrap_or(""),
        members: f.get(3).copied().unwrap_or(""),
        line,
    })
}

fn parse_id(value: &str) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_ID)
        .and_then(|n| u32::try_from(n).ok())
}

/// A USER component that is all digits is an id (Docker: "numeric is always a uid"); out of range is
/// an error rather than a name lookup.
fn parse_numeric(spec: &str, what: &'static str, value: &str) -> Result<Option<u32>, UserError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    parse_id(value)
        .map(Some)
        .ok_or_else(|| UserError::IdOutOfRange {
            spec: spec.to_owned(),
            what,
            value: value.to_owned(),
        })
}

fn entry_id(
    file: &'static str,
    name: &str,
    field: &'static str,
    value: &str,
    line: usize,
) -> Result<u32, UserError> {
    parse_id(value).ok_or_else(|| UserError::MalformedEntry {
        file,
        name: name.to_owned(),
        field,
        value: value.to_owned(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:App:/home/app:/bin/sh
+nisuser::::::
other:x:1001:100::/home/other:/bin/sh
";
    const GROUP: &str = "\
root:x:0:root
bin:x:1:root,daemon
wheel:x:10:root, app
users:x:100:
app:x:1000:
staff:x:50:app,other
";

    fn ok(uid: u32, gid: u32, groups: &[u32], home: &str) -> Result<ResolvedUser, UserError> {
        Ok(ResolvedUser {
            uid,
            gid,
            additional_gids: groups.to_vec(),
            home: home.to_owned(),
        })
    }

    #[test]
    fn docker_semantics_table() {
        let cases: &[(&str, Result<ResolvedUser, UserError>)] = &[
            ("", ok(0, 0, &[0, 1, 10], "/root")),
            ("root", ok(0, 0, &[0, 1, 10], "/root")),
            ("0", ok(0, 0, &[0, 1, 10], "/root")),
            ("app", ok(1000, 1000, &[10, 50], "/home/app")),
            ("1000", ok(1000, 1000, &[10, 50], "/home/app")),
            ("other", ok(1001, 100, &[50], "/home/other")),
            // explicit group: no supplementary groups
            ("app:users", ok(1000, 100, &[], "/home/app")),
            ("app:100", ok(1000, 100, &[], "/home/app")),
            ("app:4242", ok(1000, 4242, &[], "/home/app")),
            // numeric uid without an entry: gid 0 unless given, home "/"
            ("4242", ok(4242, 0, &[], "/")),
            ("4242:4343", ok(4242, 4343, &[], "/")),
            ("4242:staff", ok(4242, 50, &[], "/")),
            (
                "nobody",
                Err(UserError::UnknownUser {
                    name: "nobody".into(),
                }),
            ),
            (
                "nobody:users",
                Err(UserError::UnknownUser {
                    name: "nobody".into(),
                }),
            ),
            (
                "app:nogroup",
                Err(UserError::UnknownGroup {
                    name: "nogroup".into(),
                }),
            ),
            // NIS includes are never consulted
            (
                "nisuser",
                Err(UserError::UnknownUser {
                    name: "nisuser".into(),
                }),
            ),
            (
                "99999999999",
                Err(UserError::IdOutOfRange {
                    spec: "99999999999".into(),
                    what: "uid",
                    value: "99999999999".into(),
                }),
            ),
            (
                "1:2147483648",
                Err(UserError::IdOutOfRange {
                    spec: "1:2147483648".into(),
                    what: "gid",
                    value: "2147483648".into(),
                }),
            ),
            (
                "a:b:c",
                Err(UserError::InvalidSpec {
                    spec: "a:b:c".into(),
                }),
            ),
            (
                ":users",
                Err(UserError::InvalidSpec {
                    spec: ":users".into(),
                }),
            ),
            // an empty group part is the same as none
            ("app:", ok(1000, 1000, &[10, 50], "/home/app")),
        ];
        for (spec, want) in cases {
            assert_eq!(&resolve_user(spec, PASSWD, GROUP), want, "USER {spec:?}");
        }
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        assert_eq!(resolve_user("", "", ""), ok(0, 0, &[], "/"));
        assert_eq!(resolve_user("123:456", "", ""), ok(123, 456, &[], "/"));
        assert_eq!(resolve_user("123", "", ""), ok(123, 0, &[], "/"));
        assert_eq!(
            resolve_user("app", "", ""),
            Err(UserError::UnknownUser { name: "app".into() })
        );
        assert_eq!(
            resolve_user("1:staff", "", ""),
            Err(UserError::UnknownGroup {
                name: "staff".into()
            })
        );
    }

    #[test]
    fn first_matching_entry_wins() {
        let passwd = "dup:x:5:5::/a:/bin/sh\ndup:x:6:6::/b:/bin/sh\n";
        assert_eq!(resolve_user("dup", passwd, ""), ok(5, 5, &[], "/a"));
    }

    #[test]
    fn malformed_used_entry_is_an_error_not_root() {
        let passwd = "app:x:10oo:1000::/home/app:/bin/sh\n";
        assert_eq!(
            resolve_user("app", passwd, ""),
            Err(UserError::MalformedEntry {
                file: "/etc/passwd",
                name: "app".into(),
                field: "uid",
                value: "10oo".into(),
                line: 1
            })
        );
        // a malformed line that is not used does not matter
        let passwd = "bad:x:zz:zz::/:/bin/sh\napp:x:7:8::/h:/bin/sh\n";
        assert_eq!(resolve_user("app", passwd, ""), ok(7, 8, &[], "/h"));
        // a short line is tolerated as long as it is not the matched one
        assert_eq!(
            resolve_user("app", "short\napp:x:7:8::/h:/bin/sh", ""),
            ok(7, 8, &[], "/h")
        );
    }

    #[test]
    fn crlf_and_whitespace_are_tolerated() {
        let passwd = "app:x:7:8::/h:/bin/sh\r\n";
        let group = "g:x:9:app\r\n";
        assert_eq!(resolve_user("app", passwd, group), ok(7, 8, &[9], "/h"));
    }
}
