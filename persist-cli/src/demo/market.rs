//! A toy price series: a log-price random walk whose drift, volatility and return
//! autocorrelation switch between four regimes, generated one bar at a time from a saved
//! generator state so that a resumed run sees exactly the bars it would have seen.

use persist_core::persist;

use persist_schemas::rng::Rng;

/// How many recent returns the market keeps for the agent's features.
pub const WINDOW: usize = 20;
/// Bars over which momentum is summed.
pub const MOMENTUM_BARS: usize = 5;
/// The number of regimes.
pub const REGIMES: usize = 4;
/// The chance per bar of switching to another regime.
const SWITCH_PROBABILITY: f64 = 1.0 / 1000.0;
/// The smoothing of the slow exponential moving average of the log price (a 100-bar EMA).
const EMA_ALPHA: f64 = 2.0 / 101.0;
/// Bars generated before the agent starts, so that its features are defined.
const WARM_UP_BARS: usize = 2 * WINDOW;
/// The largest absolute log return of one bar.
const MAX_RETURN: f64 = 0.2;
/// The starting price's log, which every regime is weakly pulled back to so that the price
/// wanders over a long run instead of drifting off to zero or infinity.
const HOME_LOG_PRICE: f64 = 4.605_170_185_988_092; // ln(100)
/// The strength of that pull per bar (a time constant of 2,000 bars).
const HOME_PULL: f64 = 0.0005;

/// One regime's return process:
/// `r = drift + phi * r_prev - kappa * (log p - anchor) - pull * (log p - home) + vol * z`.
struct Regime {
    name: &'static str,
    drift: f64,
    vol: f64,
    phi: f64,
    kappa: f64,
}

const REGIME_TABLE: [Regime; REGIMES] = [
    Regime {
        name: "uptrend",
        drift: 0.0015,
        vol: 0.008,
        phi: 0.05,
        kappa: 0.0,
    },
    Regime {
        name: "downtrend",
        drift: -0.0015,
        vol: 0.008,
        phi: 0.05,
        kappa: 0.0,
    },
    Regime {
        name: "range",
        drift: 0.0,
        vol: 0.005,
        phi: -0.15,
        kappa: 0.05,
    },
    Regime {
        name: "turbulent",
        drift: 0.0,
        vol: 0.02,
        phi: 0.0,
        kappa: 0.0,
    },
];

/// The market's whole state: the generator, the regime and the recent history.
#[persist(nested)]
#[derive(Clone, Debug, PartialEq)]
pub struct Market {
    /// The generator's state.
    pub rng: u64,
    /// Bars generated so far (the position in the series).
    pub bar: u64,
    /// The current regime (an index into the regime table).
    pub regime: u8,
    /// The log price.
    pub log_price: f64,
    /// The log price the range regime reverts to (set when it is entered).
    pub anchor: f64,
    /// A 100-bar exponential moving average of the log price.
    pub ema: f64,
    /// The last `WINDOW` log returns, a ring buffer.
    pub returns: Vec<f64>,
    /// Where the next return goes in `returns`.
    pub ring_next: u32,
}

/// What the agent sees of the market.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// The sum of the last `MOMENTUM_BARS` returns, in units of its standard deviation.
    pub momentum: f64,
    /// The standard deviation of the last `WINDOW` returns.
    pub volatility: f64,
    /// The log price's distance from its moving average, in units of `WINDOW` bars' volatility.
    pub trend: f64,
}

impl Market {
    /// A market generated from `seed`, already past its warm-up bars.
    pub fn new(seed: u64) -> Self {
        let mut m = Market {
            rng: seed,
            bar: 0,
            regime: 0,
            log_price: HOME_LOG_PRICE,
            anchor: HOME_LOG_PRICE,
            ema: HOME_LOG_PRICE,
            returns: vec![0.0; WINDOW],
            ring_next: 0,
        };
        let mut rng = Rng::from_state(m.rng);
        m.regime = rng.below(REGIMES as u64) as u8;
        m.rng = rng.state();
        for _ in 0..WARM_UP_BARS {
            m.step();
        }
        m
    }

    /// Generates the next bar and returns its log return.
    pub fn step(&mut self) -> f64 {
        let mut rng = Rng::from_state(self.rng);
        if rng.unit() < SWITCH_PROBABILITY {
            let other = 1 + rng.below((REGIMES - 1) as u64) as usize;
            self.regime = ((usize::from(self.regime) + other) % REGIMES) as u8;
            self.anchor = self.log_price;
        }
        let regime = &REGIME_TABLE[usize::from(self.regime) % REGIMES];
        let z = rng.normal();
        self.rng = rng.state();
        let r = (regime.drift + regime.phi * self.last_return()
            - regime.kappa * (self.log_price - self.anchor)
            - HOME_PULL * (self.log_price - HOME_LOG_PRICE)
            + regime.vol * z)
            .clamp(-MAX_RETURN, MAX_RETURN);
        self.log_price += r;
        self.ema += EMA_ALPHA * (self.log_price - self.ema);
        let slot = self.ring_next as usize % WINDOW;
        self.returns[slot] = r;
        self.ring_next = ((slot + 1) % WINDOW) as u32;
        self.bar += 1;
        r
    }

    /// The most recent return.
    fn last_return(&self) -> f64 {
        let last = (self.ring_next as usize + WINDOW - 1) % WINDOW;
        self.returns.get(last).copied().unwrap_or(0.0)
    }

    /// The features of the current bar.
    pub fn features(&self) -> Features {
        let n = WINDOW as f64;
        let mean = self.returns.iter().sum::<f64>() / n;
        let var = self.returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let volatility = var.sqrt();
        let momentum_sum: f64 = (1..=MOMENTUM_BARS)
            .map(|k| {
                let i = (self.ring_next as usize + WINDOW - k) % WINDOW;
                self.returns.get(i).copied().unwrap_or(0.0)
            })
            .sum();
        let scale = |bars: usize| volatility * (bars as f64).sqrt() + 1e-12;
        Features {
            momentum: momentum_sum / scale(MOMENTUM_BARS),
            volatility,
            trend: (self.log_price - self.ema) / scale(WINDOW),
        }
    }

    /// The price (for display).
    pub fn price(&self) -> f64 {
        self.log_price.exp()
    }

    /// The current regime's name.
    pub fn regime_name(&self) -> &'static str {
        REGIME_TABLE[usize::from(self.regime) % REGIMES].name
    }

    /// Checks the invariants `step` relies on (for a decoded value).
    pub fn validate(&self) -> Result<(), String> {
        if self.returns.len() != WINDOW {
            return Err(format!(
                "market window has {} returns, expected {WINDOW}",
                self.returns.len()
            ));
        }
        if self.ring_next as usize >= WINDOW || usize::from(self.regime) >= REGIMES {
            return Err("market ring index or regime out of range".into());
        }
        let finite = [self.log_price, self.anchor, self.ema]
            .iter()
            .chain(&self.returns)
            .all(|x| x.is_finite());
        if !finite {
            return Err("market holds a non-finite number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_resumable() {
        let mut a = Market::new(5);
        let mut b = a.clone();
        let xs: Vec<f64> = (0..1000).map(|_| a.step()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.step()).collect();
        assert_eq!(xs, ys);
        assert_eq!(a, b);
        assert_eq!(a.bar, 1000 + WARM_UP_BARS as u64);
    }

    #[test]
    fn regimes_switch_and_prices_stay_finite() {
        let mut m = Market::new(11);
        let mut seen = [false; REGIMES];
        let (mut low, mut high) = (f64::MAX, f64::MIN);
        for _ in 0..500_000 {
            m.step();
            seen[usize::from(m.regime)] = true;
            low = low.min(m.price());
            high = high.max(m.price());
        }
        assert!(seen.iter().all(|&s| s), "regimes seen: {seen:?}");
        assert!(low > 1.0 && high < 10_000.0, "price range {low}..{high}");
        assert!(m.validate().is_ok());
        let f = m.features();
        assert!(f.momentum.is_finite() && f.volatility > 0.0 && f.trend.is_finite());
    }
}
