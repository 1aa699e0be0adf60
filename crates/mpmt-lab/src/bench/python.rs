//! Pure-Python work shared by the scripts the lab runs under `python3` (the `cpu` claim's GIL
//! half and the advice check's Python workload), so that both measure the same loop.

/// `count((lo, hi))`: primes in `[lo, hi)` by trial division, in pure Python (no C
/// extension, so a thread holds the GIL for all of it).
pub const COUNT_PRIMES: &str = r#"
def count(bounds):
    lo, hi = bounds
    c = 0
    for x in range(max(lo, 2), hi):
        d, p = 2, True
        while d * d <= x:
            if x % d == 0:
                p = False
                break
            d += 1
        c += p
    return c
"#;

/// A script: `prelude` (imports, arguments), then [`COUNT_PRIMES`], then `body`.
pub fn with_count_primes(prelude: &str, body: &str) -> String {
    format!("{prelude}{COUNT_PRIMES}{body}")
}
