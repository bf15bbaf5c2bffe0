//! pandas' exponentially weighted mean with `adjust=False`, one step at a time, with the same
//! floating-point operations as pandas' `ewm` kernel (`pandas/_libs/window/aggregations.pyx`),
//! so that results match to the last bit where the arithmetic allows.

/// The weights of one `ewm(..., adjust=False)`: `alpha` and `1 - alpha`, derived the way
/// pandas derives them (through the centre of mass).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ewm {
    alpha: f64,
    old: f64,
}

impl Ewm {
    /// `ewm(span=n)`: `com = (n - 1) / 2`, `alpha = 1 / (1 + com)`.
    pub(crate) fn span(n: u32) -> Self {
        let com = (f64::from(n) - 1.0) / 2.0;
        Self::com(com)
    }

    /// `ewm(alpha=a)`: `com = (1 - a) / a`, `alpha = 1 / (1 + com)`.
    pub(crate) fn alpha(a: f64) -> Self {
        Self::com((1.0 - a) / a)
    }

    fn com(com: f64) -> Self {
        let alpha = 1.0 / (1.0 + com);
        Self {
            alpha,
            old: 1.0 - alpha,
        }
    }

    /// The next mean after `prev` when `cur` is observed. pandas keeps a value equal to the
    /// observation as it is ("avoid numerical errors on constant series") and otherwise
    /// computes `(old * prev + alpha * cur) / (old + alpha)`.
    #[inline]
    pub(crate) fn step(&self, prev: f64, cur: f64) -> f64 {
        if prev == cur {
            prev
        } else {
            (self.old * prev + self.alpha * cur) / (self.old + self.alpha)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_10_is_alpha_2_over_11() {
        let e = Ewm::span(10);
        assert!((e.alpha - 2.0 / 11.0).abs() < 1e-15);
        assert_eq!(e.step(1.0, 1.0), 1.0);
        let next = e.step(10.0, 21.0);
        assert!((next - (10.0 + 2.0)).abs() < 1e-12, "{next}");
    }

    #[test]
    fn alpha_one_fourteenth() {
        let e = Ewm::alpha(1.0 / 14.0);
        let next = e.step(0.0, 14.0);
        assert!((next - 1.0).abs() < 1e-12, "{next}");
    }
}
