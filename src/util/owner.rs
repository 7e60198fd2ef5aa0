//! Who owns the files the service uses. The service runs as its own user; a command run as
//! root against its state directory must leave files that user can still use: files written
//! there take the directory's owner, or the command refuses and names the fix.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// This process's effective user id (from /proc/self/status; None where it cannot be read).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A user's name from /etc/passwd, else its number.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let id: u32 = f.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// A file would be left unusable by the directory's owner.
#[derive(Debug, thiserror::Error)]
#[error("{dir} belongs to {owner}, and this runs as {me}: the file written there would not be usable by {owner}; run the command as {owner} (sudo -u {owner} …)")]
pub struct WrongOwner {
    pub dir: PathBuf,
    pub owner: String,
    pub me: String,
}

/// Give `file` (just written, in `dir`) the owner and group of `dir` when they differ, as root
/// can; anyone else gets [`WrongOwner`].
pub fn match_directory(file: &Path, dir: &Path) -> Result<(), WrongOwner> {
    let (Ok(f), Ok(d)) = (std::fs::metadata(file), std::fs::metadata(dir)) else {
        return Ok(());
    };
    if f.uid() == d.uid() && f.gid() == d.gid() {
        return Ok(());
    }
    std::os::unix::fs::chown(file, Some(d.uid()), Some(d.gid())).map_err(|_| WrongOwner {
        dir: dir.to_path_buf(),
        owner: user_name(d.uid()),
        me: user_name(f.uid()),
    })
}

/// Refuse to run as root against a directory another user owns (the service's state
/// directory, say): files the process would create there would be root's.
pub fn refuse_root_in(dir: &Path) -> Result<(), WrongOwner> {
    let Ok(d) = std::fs::metadata(dir) else {
        return Ok(());
    };
    match effective_uid() {
        Some(0) if d.uid() != 0 => Err(WrongOwner {
            dir: dir.to_path_buf(),
            owner: user_name(d.uid()),
            me: "root".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        match_directory(&f, dir.path()).unwrap();
        refuse_root_in(dir.path()).unwrap();
        assert!(effective_uid().is_some());
    }

    #[test]
    fn a_file_of_another_owner_is_given_the_directory_s_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        // As root, hand the directory to another user: the file follows it.
        if effective_uid() == Some(0) {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
            assert!(refuse_root_in(dir.path()).is_err());
            match_directory(&f, dir.path()).unwrap();
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534));
        } else {
            // Not root: chown to the directory's owner is refused for a file of ours only
            // when they differ, which needs root to arrange; the refusal names the fix.
            let e = WrongOwner {
                dir: dir.path().into(),
                owner: "zwlock".into(),
                me: "alice".into(),
            };
            assert!(e.to_string().contains("sudo -u zwlock"), "{e}");
        }
    }
}
