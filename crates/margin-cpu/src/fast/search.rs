//! A sorted f32 list answering `#{v : v <= x}` (with `x` in f64) in a few steps: a bucket
//! table over the value range narrows the binary search to about eight entries, which keeps
//! the hundreds of millions of look-ups of the quadruplet loss out of cache-missing territory.

/// Values sorted ascending plus bucket starts.
pub(crate) struct Sorted {
    v: Vec<f32>,
    lo: f64,
    hi: f64,
    scale: f64,
    /// `starts[b]`: number of values whose bucket is below `b`; `starts[nb] = len`.
    starts: Vec<u32>,
}

impl Sorted {
    /// Sorts `v` and builds the table.
    pub fn new(mut v: Vec<f32>) -> Self {
        v.sort_unstable_by(f32::total_cmp);
        let len = v.len();
        let (lo, hi) = match (v.first(), v.last()) {
            (Some(&a), Some(&b)) => (f64::from(a), f64::from(b)),
            _ => (0.0, 0.0),
        };
        let nb = (len / 8).max(1);
        let scale = if hi > lo { nb as f64 / (hi - lo) } else { 0.0 };
        let mut s = Self {
            v,
            lo,
            hi,
            scale,
            starts: vec![0; nb + 1],
        };
        let mut counts = vec![0u32; nb + 1];
        for &x in &s.v {
            counts[s.bucket(f64::from(x)) + 1] += 1;
        }
        for b in 0..nb {
            counts[b + 1] += counts[b];
        }
        s.starts = counts;
        s
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.v.len()
    }

    /// The sorted values.
    pub fn values(&self) -> &[f32] {
        &self.v
    }

    #[inline]
    fn bucket(&self, x: f64) -> usize {
        let nb = self.starts.len() - 1;
        (((x - self.lo) * self.scale) as usize).min(nb - 1)
    }

    /// `#{v : f64(v) <= x}`.
    #[inline(always)]
    pub fn count_le(&self, x: f64) -> usize {
        if self.v.is_empty() || x < self.lo {
            return 0;
        }
        if x >= self.hi {
            return self.v.len();
        }
        let b = self.bucket(x);
        let (s, t) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        s + count_le_branchless(&self.v[s..t], x)
    }
}

/// `#{v : f64(v) <= x}` in a sorted slice, with conditional moves instead of branches.
#[inline(always)]
fn count_le_branchless(v: &[f32], x: f64) -> usize {
    let mut size = v.len();
    if size == 0 {
        return 0;
    }
    let mut base = 0usize;
    while size > 1 {
        let half = size / 2;
        let mid = base + half;
        base = if f64::from(v[mid]) <= x { mid } else { base };
        size -= half;
    }
    base + usize::from(f64::from(v[base]) <= x)
}

#[cfg(test)]
mod tests {
    use super::Sorted;

    #[test]
    fn matches_linear_count() {
        let v: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 613) as f32 * 0.01)
            .collect();
        let s = Sorted::new(v.clone());
        for k in -5..700 {
            let x = f64::from(k as f32 * 0.01) + 1e-9 * f64::from(k % 3 - 1);
            let want = v.iter().filter(|&&a| f64::from(a) <= x).count();
            assert_eq!(s.count_le(x), want, "x = {x}");
        }
        assert_eq!(Sorted::new(vec![]).count_le(1.0), 0);
        assert_eq!(Sorted::new(vec![2.0]).count_le(2.0), 1);
    }
}
