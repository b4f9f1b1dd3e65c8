//! `rate_limit`: how many answers a second each client prefix gets over
//! UDP, from the fast path and from the resolver (each counts its own), as
//! BIND's and Knot's response rate limiting has it; over the limit, every
//! `slip`-th answer goes out truncated and the rest are dropped. TCP is
//! not limited: no one can spoof it.
//!
//! ```yaml
//! rate_limit:
//!   responses_per_second: 20   # 0, the default: no limit
//!   window: 15s                # how long a flood is remembered (1s to 1h)
//!   slip: 2                    # 0: drop them all; 1: truncate them all
//!   ipv4_prefix: 24            # the clients that share a limit
//!   ipv6_prefix: 56
//! ```

use meshdns_common::RateLimit;
use serde::Deserialize;

use super::{ConfigErrorKind, Duration};

/// As the file writes it; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub responses_per_second: u32,
    pub window: Duration,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    /// BIND's defaults, and off.
    fn default() -> Self {
        Self {
            responses_per_second: 0,
            window: Duration::Seconds(15),
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }
    }
}

/// The limit, checked; see [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub responses_per_second: u32,
    pub window_seconds: u32,
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl RateLimitSettings {
    /// The settings `limit` was made of; `None` if it is off.
    pub fn of(limit: &RateLimit) -> Option<Self> {
        let (ipv4_prefix, ipv6_prefix) = limit.prefixes();
        limit.is_on().then_some(Self {
            responses_per_second: limit.responses_per_second,
            window_seconds: limit.window_seconds,
            slip: limit.slip,
            ipv4_prefix,
            ipv6_prefix,
        })
    }

    /// The limit as the program and the resolver apply it.
    pub fn limit(&self) -> RateLimit {
        RateLimit::new(
            self.responses_per_second,
            self.window_seconds,
            self.slip,
            self.ipv4_prefix,
            self.ipv6_prefix,
        )
    }
}

impl std::fmt::Display for RateLimitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} answers/s per /{} and /{}, window {}s, slip {}",
            self.responses_per_second,
            self.ipv4_prefix,
            self.ipv6_prefix,
            self.window_seconds,
            self.slip
        )
    }
}

/// The most answers a second a limit may allow: a bucket's cost in
/// nanoseconds stays 1,000 or more.
pub const MAX_RESPONSES_PER_SECOND: u32 = 1_000_000;
/// The longest window, and the most slip: BIND's bounds.
const MAX_WINDOW_SECONDS: u64 = 3600;
const MAX_SLIP: u32 = 10;

/// Checks what the file says; `None`: no limit (no `rate_limit`, or
/// `responses_per_second: 0`).
pub fn check(
    config: Option<&RateLimitConfig>,
) -> Result<Option<RateLimitSettings>, ConfigErrorKind> {
    let Some(config) = config else {
        return Ok(None);
    };
    let bad = |field: &'static str, why: String| ConfigErrorKind::RateLimit { field, why };
    if config.responses_per_second > MAX_RESPONSES_PER_SECOND {
        return Err(bad(
            "responses_per_second",
            format!(
                "{} is above the most, {MAX_RESPONSES_PER_SECOND}",
                config.responses_per_second
            ),
        ));
    }
    let window = config.window.seconds().map_err(|why| bad("window", why))?;
    if !(1..=MAX_WINDOW_SECONDS).contains(&window) {
        return Err(bad(
            "window",
            format!("{window}s is not from 1s to {MAX_WINDOW_SECONDS}s"),
        ));
    }
    if config.slip > MAX_SLIP {
        return Err(bad(
            "slip",
            format!("{} is not from 0 to {MAX_SLIP}", config.slip),
        ));
    }
    if config.ipv4_prefix > 32 {
        return Err(bad(
            "ipv4_prefix",
            format!("{} is not from 0 to 32", config.ipv4_prefix),
        ));
    }
    if config.ipv6_prefix > 128 {
        return Err(bad(
            "ipv6_prefix",
            format!("{} is not from 0 to 128", config.ipv6_prefix),
        ));
    }
    Ok(
        (config.responses_per_second != 0).then_some(RateLimitSettings {
            responses_per_second: config.responses_per_second,
            window_seconds: window as u32,
            slip: config.slip,
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
        }),
    )
}

#[cfg(test)]
mod tests {
    use crate::config::Services;

    fn parse(
        rate_limit: &str,
    ) -> Result<Option<super::RateLimitSettings>, (Option<usize>, String)> {
        let text = format!("zone: mesh\n{rate_limit}services:\n  - name: redis\n");
        Services::parse(&text)
            .map(|services| services.resolver.rate_limit)
            .map_err(|(line, kind)| (line, kind.to_string()))
    }

    #[test]
    fn no_rate_limit_and_zero_are_off() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("rate_limit:\n  responses_per_second: 0\n"), Ok(None));
    }

    #[test]
    fn the_defaults_are_binds() {
        let settings = parse("rate_limit:\n  responses_per_second: 20\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            settings,
            super::RateLimitSettings {
                responses_per_second: 20,
                window_seconds: 15,
                slip: 2,
                ipv4_prefix: 24,
                ipv6_prefix: 56,
            }
        );
        assert_eq!(
            settings.to_string(),
            "20 answers/s per /24 and /56, window 15s, slip 2"
        );
        assert_eq!(settings.limit().cost_ns, 50_000_000);
        assert_eq!(
            super::RateLimitSettings::of(&settings.limit()),
            Some(settings)
        );
    }

    #[test]
    fn every_field_as_written() {
        let settings = parse(
            "rate_limit:\n  responses_per_second: 5\n  window: 1m\n  slip: 0\n  ipv4_prefix: 32\n  ipv6_prefix: 64\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                settings.window_seconds,
                settings.slip,
                settings.ipv4_prefix,
                settings.ipv6_prefix
            ),
            (60, 0, 32, 64)
        );
        assert_eq!(
            super::RateLimitSettings::of(&settings.limit()),
            Some(settings)
        );
    }

    #[test]
    fn a_bad_field_is_refused_with_its_line() {
        for (body, field, why) in [
            ("window: 0", "window", "0s is not from 1s to 3600s"),
            ("window: 2h", "window", "7200s is not from 1s to 3600s"),
            ("window: soon", "window", "soon"),
            ("slip: 11", "slip", "11 is not from 0 to 10"),
            ("ipv4_prefix: 33", "ipv4_prefix", "33 is not from 0 to 32"),
            (
                "ipv6_prefix: 129",
                "ipv6_prefix",
                "129 is not from 0 to 128",
            ),
            (
                "responses_per_second: 1000001",
                "responses_per_second",
                "1000001 is above the most, 1000000",
            ),
        ] {
            // The field at fault on line 3, below the zone and the section.
            let (line, error) = parse(&format!("rate_limit:\n  {body}\n")).unwrap_err();
            assert_eq!(line, Some(3), "{field}: {error}");
            assert!(
                error.starts_with(&format!("rate_limit: {field}: ")) && error.contains(why),
                "{field}: {error}"
            );
        }
        let (_, error) = parse("rate_limit:\n  rate: 5\n").unwrap_err();
        assert!(error.contains("rate"), "{error}");
    }
}
