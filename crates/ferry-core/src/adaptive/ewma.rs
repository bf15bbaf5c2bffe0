//! Exponentially weighted mean and variance.

/// An exponentially weighted moving mean and variance (West's incremental form).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanVar {
    alpha: f64,
    mean: f64,
    var: f64,
    samples: u64,
}

impl MeanVar {
    /// A tracker where each new sample has weight `alpha` (0 < alpha ≤ 1).
    pub fn new(alpha: f64) -> Self {
        MeanVar {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            mean: 0.0,
            var: 0.0,
            samples: 0,
        }
    }

    /// Adds a sample.
    pub fn update(&mut self, x: f64) {
        if self.samples == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let diff = x - self.mean;
            let incr = self.alpha * diff;
            self.mean += incr;
            self.var = (1.0 - self.alpha) * (self.var + diff * incr);
        }
        self.samples += 1;
    }

    /// The mean, or `None` before the first sample.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then_some(self.mean)
    }

    /// The standard deviation (0 before the second sample).
    pub fn std_dev(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// How many samples were added.
    pub fn samples(&self) -> u64 {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_a_constant() {
        let mut m = MeanVar::new(0.3);
        assert_eq!(m.mean(), None);
        for _ in 0..100 {
            m.update(5.0);
        }
        assert!((m.mean().unwrap() - 5.0).abs() < 1e-9);
        assert!(m.std_dev() < 1e-9);
    }

    #[test]
    fn tracks_spread() {
        let mut m = MeanVar::new(0.1);
        for i in 0..1000 {
            m.update(if i % 2 == 0 { 0.0 } else { 10.0 });
        }
        assert!((m.mean().unwrap() - 5.0).abs() < 1.0);
        assert!(m.std_dev() > 3.0);
    }
}
