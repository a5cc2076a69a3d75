//! The service's account on an installed box: the user that owns the data directory, what that
//! user can read, and giving back to it the files an admin command run as root wrote there.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// The system user the package creates and the unit runs as.
pub const SERVICE_USER: &str = "orderd";

/// A user and every group it is in.
#[derive(Debug, Clone)]
pub struct Account {
    /// Login name (`uid N` for an id with no name).
    pub name: String,
    /// The group to give a file it must read (its primary group's name, or the number).
    group: String,
    uid: u32,
    gids: Vec<u32>,
}

/// Whether this process runs as root.
#[must_use]
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// For a command run as root: the account the service runs as, which is the owner of
/// `data_dir` when it exists and root does not own it, else the system user `orderd` when
/// there is one. `None` when not root (the process checks as itself) or no such account exists.
#[must_use]
pub fn service_account(data_dir: &Path) -> Option<Account> {
    use nix::unistd::{Gid, User, getgrouplist};
    if !is_root() {
        return None;
    }
    let (user, owner) = match std::fs::metadata(data_dir) {
        Ok(m) if m.uid() != 0 => (
            User::from_uid(m.uid().into()).ok().flatten(),
            Some((m.uid(), m.gid())),
        ),
        _ => (User::from_name(SERVICE_USER).ok().flatten(), None),
    };
    match (user, owner) {
        (Some(user), _) => {
            let name = std::ffi::CString::new(user.name.clone()).ok()?;
            let gids = getgrouplist(&name, user.gid).map_or_else(
                |_| vec![user.gid.as_raw()],
                |g| g.into_iter().map(Gid::as_raw).collect(),
            );
            let group = nix::unistd::Group::from_gid(user.gid)
                .ok()
                .flatten()
                .map_or_else(|| user.gid.to_string(), |g| g.name);
            Some(Account {
                name: user.name,
                group,
                uid: user.uid.as_raw(),
                gids,
            })
        }
        // An owner with no account name (a numeric id): its id and the directory's group.
        (None, Some((uid, gid))) => Some(Account {
            name: format!("uid {uid}"),
            group: gid.to_string(),
            uid,
            gids: vec![gid],
        }),
        (None, None) => None,
    }
}

impl Account {
    /// Why this account cannot read `path` (the file, or a directory on the way to it), or
    /// `None` when it can. Judged from owners and modes, as the kernel would for this user.
    #[must_use]
    pub fn cannot_read(&self, path: &Path) -> Option<String> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        for dir in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            if !self.allowed(&meta, 0o1) {
                return Some(format!(
                    "the service's user {} cannot enter {} (owner {}:{}, mode {:o})",
                    self.name,
                    dir.display(),
                    meta.uid(),
                    meta.gid(),
                    meta.mode() & 0o7777
                ));
            }
        }
        let meta = std::fs::metadata(&path).ok()?;
        (!self.allowed(&meta, 0o4)).then(|| {
            format!(
                "the service's user {} cannot read {} (owner {}:{}, mode {:o}); run `chgrp {} {}` and `chmod 0640 {}`",
                self.name,
                path.display(),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777,
                self.group,
                path.display(),
                path.display()
            )
        })
    }

    /// Whether the mode bits grant `bit` (4 read, 1 search) to this account.
    fn allowed(&self, meta: &std::fs::Metadata, bit: u32) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & (bit << 6) != 0
        } else if self.gids.contains(&meta.gid()) {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    }
}

/// After a command run as root wrote into `data_dir`: every file or directory in it that root
/// owns goes to the directory's owner, with its mode unchanged, so the service can open it
/// again. Does nothing when not root or when root owns the directory (a checkout's
/// `./orderd-data` under root). Returns how many entries changed hands.
///
/// # Errors
/// Reading the directory or changing an owner failed.
pub fn give_back(data_dir: &Path) -> io::Result<usize> {
    if !is_root() {
        return Ok(0);
    }
    let owner = match std::fs::metadata(data_dir) {
        Ok(m) if m.uid() != 0 => (m.uid(), m.gid()),
        Ok(_) => return Ok(0),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    give_back_in(data_dir, owner)
}

fn give_back_in(dir: &Path, (uid, gid): (u32, u32)) -> io::Result<usize> {
    let mut changed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.uid() == 0 {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            changed += 1;
        }
        if meta.is_dir() {
            changed += give_back_in(&entry.path(), (uid, gid))?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn account(uid: u32, gids: &[u32]) -> Account {
        Account {
            name: "svc".into(),
            group: "svc".into(),
            uid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn reads_by_owner_group_and_others_as_the_kernel_would() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = tmp.path().join("token");
        std::fs::write(&f, b"t").unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        let (uid, gid) = (meta.uid(), meta.gid());
        let stranger = account(uid + 4242, &[gid + 4242]);
        let member = account(uid + 4242, &[gid + 4242, gid]);

        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(
            member.cannot_read(&f).is_none(),
            "a group member reads 0640"
        );
        let why = stranger.cannot_read(&f).expect("others cannot read 0640");
        assert!(why.contains("chmod 0640"), "{why}");

        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(member.cannot_read(&f).is_some(), "0600 is the owner's only");
        assert!(
            account(uid, &[]).cannot_read(&f).is_none(),
            "the owner reads 0600"
        );

        // A directory on the way that the account cannot enter hides the file.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let why = member.cannot_read(&f).expect("the directory is closed");
        assert!(why.contains("cannot enter"), "{why}");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn files_root_wrote_go_back_to_the_owner_of_the_data_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("orderd.redb");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            // The service's files belong to its user; root just wrote one.
            std::os::unix::fs::chown(&dir, Some(4242), Some(4243)).unwrap();
            assert_eq!(give_back(&dir).unwrap(), 1);
            let meta = std::fs::metadata(&f).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4242, 4243));
            assert_eq!(meta.mode() & 0o777, 0o600, "the mode is kept");
            assert_eq!(give_back(&dir).unwrap(), 0, "nothing left to give");
        } else {
            // Not root: a user's files are its own already, and nothing changes hands.
            assert_eq!(give_back(&dir).unwrap(), 0);
        }
    }
}
