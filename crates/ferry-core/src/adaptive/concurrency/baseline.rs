//! The no-load round trip of a call of a given batch size: measured per size, or predicted
//! from the sizes measured (see the module docs of [`super`]).

use std::collections::BTreeMap;

/// The no-load RTT (seconds) of a call of `size` items, from the lowest calm window mean
/// measured per size (`points`): the point itself, or a prediction from the others.
pub(super) fn predict(points: &BTreeMap<usize, f64>, size: usize) -> Option<f64> {
    if let Some(&rtt) = points.get(&size) {
        return Some(rtt);
    }
    let n = size as f64;
    match points.len() {
        0 => None,
        // One point: proportional, smaller sizes included. (Taking the same RTT for a
        // smaller size, as this once did, let a window whose calls waited in the
        // target's queue pass as calm and become that size's point: on a 3-slot gateway
        // a batch of 7 took 500 ms alone and 680 ms queued, and 680 ms became "no
        // load", holding the limit at twice the slots.)
        1 => points.iter().next().map(|(&s, &rtt)| rtt * n / s as f64),
        _ => {
            // Least-squares line through (size, rtt); a negative slope is noise: flat.
            let k = points.len() as f64;
            let (sx, sy) = points
                .iter()
                .fold((0.0, 0.0), |(sx, sy), (&s, &r)| (sx + s as f64, sy + r));
            let (mx, my) = (sx / k, sy / k);
            let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (&s, &r)| {
                let dx = s as f64 - mx;
                (sxy + dx * (r - my), sxx + dx * dx)
            });
            let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
            // Never below proportional from the smallest size measured: a noisy line
            // can cross zero.
            let floor = points
                .iter()
                .next()
                .map_or(0.0, |(&s, &rtt)| rtt * n.min(s as f64) / s as f64);
            Some((my + slope * (n - mx)).max(floor))
        }
    }
}
