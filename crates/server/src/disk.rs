//! The data directory on disk: free space on its filesystem, for the storage alarm (SENDs are
//! refused while it is below `storage.min_free_space`, because running the store into ENOSPC leaves
//! it unable to write until restart), and the space it occupies, for metrics.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes available to unprivileged writers on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the right
    // type; statvfs fills it completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    // fsblkcnt_t and c_ulong are u64 here but narrower on some targets.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Bytes the files under `path` occupy (the data directory, for the `stampede_store_disk_bytes`
/// gauge).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The alarm reason when `free` is below `min`, else `None`.
pub fn alarm(free: u64, min: u64) -> Option<String> {
    (free < min).then(|| format!("{free} bytes free on the data directory's filesystem, below storage.min_free_space = {min}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_free_space_and_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
        assert_eq!(alarm(10, 5), None);
        assert!(alarm(4, 5).unwrap().contains("storage.min_free_space"));
    }
}
