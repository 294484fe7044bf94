//! Bytes this process has written to storage (Linux `/proc/self/io`,
//! `write_bytes`: pages it dirtied in files on a block device; unlike
//! `wchar`, sockets do not count, so the HTTP simulation's own traffic is
//! left out): what its phones and server cost the flash.

/// Bytes written to storage so far, or `None` where the kernel does not say.
pub fn bytes_written() -> Option<u64> {
    parse_write_bytes(&std::fs::read_to_string("/proc/self/io").ok()?)
}

fn parse_write_bytes(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_write_bytes_not_wchar() {
        let io = "rchar: 10\nwchar: 999\nsyscr: 1\nsyscw: 2\nread_bytes: 0\n\
                  write_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_write_bytes(io), Some(4096));
        assert_eq!(parse_write_bytes("wchar: 5\n"), None);
    }
}
