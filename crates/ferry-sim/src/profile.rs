//! Named API profiles: [`SimConfig`]s that model what real gateways in front of a
//! monday.com-style API do, selected with `ferry-sim --profile NAME`. Each prints its
//! settings and its ceiling at start and shows them in `GET /stats` (`profile`). Faults
//! common to all (`--error-rate`, `--drop-rate`) are set apart, so each ceiling stays exact.
//!
//! The table of profiles, their settings and ceilings is in the crate docs.
//!
//! Every profile but `default` checks values per column type (see
//! [`ColumnType`](crate::ColumnType)), as monday.com does.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{Budget, SimConfig};

/// A named set of settings; [`config`](Self::config) gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Today's behaviour: [`SimConfig::default`].
    Default,
    /// 8 slots behind a gateway with a 1.5 s timeout from arrival that holds the slot.
    GatewayQueue,
    /// 3 slots behind a gateway with a 1.0 s timeout from arrival that holds the slot.
    GatewayQueueSmall,
    /// 12 slots and a token bucket of 8 requests/s with fractional `Retry-After`.
    TokenBucket,
    /// 8 slots and a monday.com-style complexity budget answered in `200` bodies.
    ComplexityBudget,
    /// The default limits with poison that names no alias.
    Poison,
}

impl Profile {
    /// Every profile, in the order of the crate docs' table.
    pub const ALL: [Profile; 6] = [
        Profile::Default,
        Profile::GatewayQueue,
        Profile::GatewayQueueSmall,
        Profile::TokenBucket,
        Profile::ComplexityBudget,
        Profile::Poison,
    ];

    /// Its name on the command line, e.g. `token-bucket`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::GatewayQueue => "gateway-queue",
            Profile::GatewayQueueSmall => "gateway-queue-small",
            Profile::TokenBucket => "token-bucket",
            Profile::ComplexityBudget => "complexity-budget",
            Profile::Poison => "poison",
        }
    }

    /// Its settings.
    pub fn config(self) -> SimConfig {
        let ms = Duration::from_millis;
        let realistic = SimConfig {
            profile: self.name().to_owned(),
            check_values: true,
            ..SimConfig::default()
        };
        let gateway = |slots, timeout| SimConfig {
            slots,
            per_request: ms(80),
            per_mutation: ms(60),
            // The backend gives up at the gateway's timeout too: a batch must fit in it.
            request_timeout: timeout,
            gateway_timeout: Some(timeout),
            rate_limit: u32::MAX,
            ..realistic.clone()
        };
        match self {
            Profile::Default => SimConfig::default(),
            Profile::GatewayQueue => gateway(8, ms(1_500)),
            Profile::GatewayQueueSmall => gateway(3, ms(1_000)),
            Profile::TokenBucket => SimConfig {
                slots: 12,
                rate_limit: 8,
                token_bucket_burst: Some(2),
                ..realistic
            },
            Profile::ComplexityBudget => SimConfig {
                slots: 8,
                rate_limit: u32::MAX,
                budget: Some(Budget {
                    points: 10_000,
                    window: ms(10_000),
                    per_request: 10,
                    per_mutation: 10,
                }),
                ..realistic
            },
            Profile::Poison => SimConfig {
                poison_unnamed: true,
                ..realistic
            },
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Profile::ALL.iter().map(|p| p.name()).collect();
                format!("unknown profile `{s}` (one of {})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.05
    }

    #[test]
    fn the_documented_ceilings_and_plans() {
        let want = [
            (Profile::Default, 184.0, 23, 4),
            (Profile::GatewayQueue, 8.0 * 23.0 / 1.46, 23, 8),
            (Profile::GatewayQueueSmall, 3.0 * 15.0 / 0.98, 15, 3),
            (Profile::TokenBucket, 184.0, 23, 12),
            (Profile::ComplexityBudget, 41.0 * 23.0 / 10.0, 23, 8),
            (Profile::Poison, 184.0, 23, 4),
        ];
        for (p, ceiling, batch, concurrency) in want {
            let c = p.config();
            c.validate().unwrap();
            assert_eq!(c.profile, p.name());
            assert!(close(c.ceiling(), ceiling), "{p}: {}", c.ceiling());
            let plan = c.plan();
            assert_eq!((plan.batch, plan.concurrency), (batch, concurrency), "{p}");
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
            assert!(c.summary().contains(p.name()));
            assert_eq!(c.describe()["name"], p.name());
        }
        assert_eq!(Profile::TokenBucket.config().plan().rate, Some(8.0));
        assert_eq!(Profile::ComplexityBudget.config().plan().rate, Some(4.1));
        assert_eq!(Profile::GatewayQueue.config().plan().rate, None);
        assert_eq!(Profile::Default.config(), SimConfig::default());
        assert!("nope"
            .parse::<Profile>()
            .unwrap_err()
            .contains("token-bucket"));
    }
}
