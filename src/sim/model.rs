//! The simulator's behaviour model: channels, company sizes, reps and the
//! conversion probability. Kept apart so that a backtest can ask the same
//! model what a different policy would likely have changed.

use crate::domain::time::{MS_PER_DAY, MS_PER_HOUR};
use crate::domain::Currency;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub const REGIONS: [&str; 5] = ["east", "north", "south", "west", "central"];
pub const INDUSTRIES: [&str; 6] = [
    "saas",
    "manufacturing",
    "retail",
    "finance",
    "healthcare",
    "education",
];
pub const POOLS: [&str; 2] = ["smb", "enterprise"];

/// The sim's own recall rules (the engine's policy processor replaces them
/// in the live demo).
pub const FIRST_FOLLOW_UP_LIMIT_MS: i64 = 48 * MS_PER_HOUR;
pub const STALE_AFTER_MS: i64 = 7 * MS_PER_DAY;
pub const HOLD_LIMIT_MS: i64 = 30 * MS_PER_DAY;
pub const RECALLS_MAX: u32 = 3;

/// One kind of interaction the simulated marketing system reports.
pub struct Engagement {
    pub kind: &'static str,
    pub source: &'static str,
    /// Expected interactions of a lead scored 50.
    pub mean_at_50: f64,
    /// How steeply the expected count follows the score: it is
    /// `mean_at_50 × (score / 50)^steepness` — the telling kinds (a reply,
    /// a form) are rare from leads that will not buy.
    pub steepness: f64,
    /// Mean time from the lead's scoring to one interaction.
    pub after_mean_ms: i64,
}

impl Engagement {
    pub fn expected(&self, score: u32) -> f64 {
        self.mean_at_50 * (f64::from(score) / 50.0).powf(self.steepness)
    }
}

pub const ENGAGEMENTS: [Engagement; 6] = [
    Engagement {
        kind: "web_visit",
        source: "website",
        mean_at_50: 2.0,
        steepness: 0.5,
        after_mean_ms: 2 * MS_PER_DAY,
    },
    Engagement {
        kind: "email_open",
        source: "email",
        mean_at_50: 1.5,
        steepness: 0.5,
        after_mean_ms: 2 * MS_PER_DAY,
    },
    Engagement {
        kind: "content_download",
        source: "website",
        mean_at_50: 0.4,
        steepness: 1.0,
        after_mean_ms: 3 * MS_PER_DAY,
    },
    Engagement {
        kind: "email_reply",
        source: "email",
        mean_at_50: 0.3,
        steepness: 2.0,
        after_mean_ms: MS_PER_DAY,
    },
    Engagement {
        kind: "form_submit",
        source: "website",
        mean_at_50: 0.25,
        steepness: 2.0,
        after_mean_ms: MS_PER_DAY,
    },
    Engagement {
        kind: "event_attended",
        source: "events",
        mean_at_50: 0.1,
        steepness: 1.5,
        after_mean_ms: 5 * MS_PER_DAY,
    },
];

pub struct Channel {
    pub name: &'static str,
    /// Mean acquisition cost per lead.
    pub cost_minor_units: i64,
    /// 0..1: how good its leads are (drives score and conversion).
    pub quality: f64,
    /// Relative share of lead volume.
    pub share: f64,
}

pub struct Size {
    pub name: &'static str,
    pub share: f64,
    /// Mean deal value.
    pub deal_minor_units: i64,
}

pub const SIZES: [Size; 4] = [
    Size {
        name: "small",
        share: 0.5,
        deal_minor_units: 500_000,
    },
    Size {
        name: "medium",
        share: 0.3,
        deal_minor_units: 1_500_000,
    },
    Size {
        name: "large",
        share: 0.15,
        deal_minor_units: 6_000_000,
    },
    Size {
        name: "enterprise",
        share: 0.05,
        deal_minor_units: 25_000_000,
    },
];

/// Small and medium companies go to the SMB pool, the rest to enterprise.
pub fn pool_for_size(size: usize) -> usize {
    usize::from(size >= 2)
}

pub struct Rep {
    pub id: String,
    pub pool: usize,
    /// Mean time from assignment to first follow-up (before load slows it).
    pub first_follow_up_mean_ms: f64,
    /// Mean gap between later follow-ups.
    pub follow_up_gap_mean_ms: f64,
    /// Multiplies conversion probability: 0.6 (weak) .. 1.4 (strong).
    pub skill: f64,
}

pub struct Model {
    pub currency: Currency,
    pub channels: Vec<Channel>,
    pub reps: Vec<Rep>,
}

impl Model {
    /// The model a [`super::Simulator`] with this seed and rep count uses
    /// (for estimates on its histories, e.g. in backtests).
    pub fn for_seed(seed: u64, reps: u32) -> Model {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Model::new(reps.max(2), &mut rng)
    }

    pub fn new(reps: u32, rng: &mut ChaCha8Rng) -> Model {
        let channels = vec![
            Channel {
                name: "search_ads",
                cost_minor_units: 30_000,
                quality: 0.55,
                share: 0.30,
            },
            Channel {
                name: "social",
                cost_minor_units: 12_000,
                quality: 0.30,
                share: 0.25,
            },
            Channel {
                name: "trade_show",
                cost_minor_units: 150_000,
                quality: 0.75,
                share: 0.08,
            },
            Channel {
                name: "referral",
                cost_minor_units: 20_000,
                quality: 0.85,
                share: 0.07,
            },
            Channel {
                name: "content",
                cost_minor_units: 15_000,
                quality: 0.45,
                share: 0.15,
            },
            Channel {
                name: "cold_list",
                cost_minor_units: 2_000,
                quality: 0.12,
                share: 0.15,
            },
        ];
        let reps = (0..reps)
            .map(|i| Rep {
                id: format!("rep-{i:03}"),
                // One rep in four works the enterprise pool.
                pool: usize::from(i % 4 == 0),
                first_follow_up_mean_ms: rng.gen_range(1.0..30.0) * MS_PER_HOUR as f64,
                follow_up_gap_mean_ms: rng.gen_range(0.5..3.0) * MS_PER_DAY as f64,
                skill: rng.gen_range(0.6..1.4),
            })
            .collect();
        Model {
            currency: Currency::parse("CNY").expect("valid code"),
            channels,
            reps,
        }
    }

    pub fn pick_channel(&self, rng: &mut ChaCha8Rng) -> usize {
        pick_weighted(rng, self.channels.iter().map(|c| c.share))
    }

    pub fn pick_size(&self, rng: &mut ChaCha8Rng) -> usize {
        pick_weighted(rng, SIZES.iter().map(|s| s.share))
    }

    /// Probability that a lead converts, given who works it and how fast the
    /// first follow-up came: rises with quality, score and skill, decays
    /// with the first follow-up delay (halving about every 25 hours).
    pub fn conversion_probability(
        &self,
        channel: usize,
        score: u32,
        rep: usize,
        first_delay_ms: i64,
    ) -> f64 {
        let quality = self.channels[channel].quality;
        let skill = self.reps[rep].skill;
        let delay_h = first_delay_ms.max(0) as f64 / MS_PER_HOUR as f64;
        let p = 0.45 * quality * (f64::from(score) / 100.0 + 0.1) * skill * (-delay_h / 36.0).exp();
        p.clamp(0.0, 0.95)
    }
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = rng.gen_range(0.0..total);
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
        last = i;
    }
    last
}
