//! SecAgg+'s sparse neighbour graph (Bell et al., CCS 2020): each client
//! masks with, and shares its secrets among, only `k` neighbours instead of
//! the whole cohort, so its work and bytes grow with `k` (logarithmic in the
//! cohort) rather than with the cohort.
//!
//! The graph is a ring over roster indices (a Harary graph): client `i`'s
//! neighbours are the `k / 2` indices on each side. The server numbers the
//! roster; an honest-but-curious server gains nothing from the numbering,
//! a malicious one could isolate a client by numbering its colluders around
//! it (SecAgg+ draws the graph from public randomness; out of scope here,
//! README "What the server learns").

/// The neighbours' count for a cohort of `n`: `wanted` rounded up to even,
/// at most `n - 1` (then the graph is complete).
pub fn degree(n: u32, wanted: u32) -> u32 {
    let even = wanted + wanted % 2;
    even.min(n.saturating_sub(1))
}

/// Shares needed to recover a client's secrets: more than half of its
/// neighbours, so the shares of a client the server calls "dropped" and of
/// one it calls "alive" can never both reach a threshold from honest holders.
pub fn threshold(degree: u32) -> u32 {
    degree / 2 + 1
}

/// `i`'s neighbours in a cohort of `n` with the given degree, ascending.
pub fn neighbours(n: u32, degree: u32, i: u32) -> Vec<u32> {
    if degree >= n.saturating_sub(1) {
        return (0..n).filter(|&j| j != i).collect();
    }
    let half = degree / 2;
    let mut out: Vec<u32> = (1..=half)
        .flat_map(|d| [(i + d) % n, (i + n - d) % n])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether `i` and `j` are neighbours.
pub fn adjacent(n: u32, degree: u32, i: u32, j: u32) -> bool {
    if i == j || i >= n || j >= n {
        return false;
    }
    if degree >= n - 1 {
        return true;
    }
    let d = i.abs_diff(j);
    d.min(n - d) <= degree / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_symmetric_and_regular() {
        for (n, wanted) in [(3, 8), (10, 4), (50, 13), (200, 24)] {
            let k = degree(n, wanted);
            for i in 0..n {
                let mine = neighbours(n, k, i);
                assert_eq!(mine.len() as u32, k, "n {n} i {i}");
                for j in 0..n {
                    assert_eq!(mine.contains(&j), adjacent(n, k, i, j));
                    assert_eq!(adjacent(n, k, i, j), adjacent(n, k, j, i));
                }
            }
        }
        assert_eq!(degree(50, 13), 14);
        assert_eq!(degree(5, 13), 4);
        assert_eq!(threshold(14), 8);
    }
}
