//! What the calls a target served show of its parallel slots.

use tokio::time::Instant;

/// The most served calls that were in flight at one instant, among those that came
/// back since `since`: a lower bound on the target's parallel slots.
pub(super) fn most_at_once(
    recent: &std::collections::VecDeque<(Instant, Instant)>,
    since: Instant,
) -> usize {
    let mut edges: Vec<(Instant, i32)> = recent
        .iter()
        .filter(|(_, done)| *done >= since)
        .flat_map(|&(sent, done)| [(sent, 1), (done, -1)])
        .collect();
    // At one instant an end counts before a start: back-to-back calls are not at once.
    edges.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most.max(0) as usize
}
