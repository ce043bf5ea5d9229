use super::evaluate::{auc, evaluate};
use super::model::{Counts, Features, Model};
use super::rules::{attribute_score, Behaviour, KINDS_PER_LEAD_MAX};
use super::*;
use crate::domain::{build, EventBody, LeadCreated};

const DAY: i64 = 86_400_000;

const SCORING: &str = r#"
[[attributes]]
field = "industry"
equals = "manufacturing"
points = 20
[[attributes]]
field = "company_size"
any_of = ["large", "enterprise"]
points = 15
[[attributes]]
field = "attributes.budget"
equals = "approved"
points = 30
[[attributes]]
field = "channel"
equals = "cold_list"
points = -40
[behaviour.email_reply]
points = 15
half_life = "14d"
cap = 40
[behaviour.web_visit]
points = 2
[predictive]
horizon = "30d"
min_examples = 10
"#;

fn parse(text: &str) -> Result<Scoring, String> {
    let s: Scoring = toml::from_str(text).map_err(|e| e.to_string())?;
    s.validate()?;
    Ok(s)
}

fn scoring() -> Scoring {
    parse(SCORING).unwrap()
}

fn lead(channel: &str, industry: &str, size: &str, budget: Option<&str>) -> LeadCreated {
    let mut e = build::created("e", "l")
        .channel(channel)
        .profile("east", industry, size)
        .event();
    let EventBody::Created(c) = &mut e.body else {
        unreachable!("a created event")
    };
    if let Some(b) = budget {
        c.attributes.insert("budget".into(), b.into());
    }
    c.clone()
}

#[test]
fn attribute_points_add_up_from_the_rules_that_match_within_0_to_100() {
    let s = scoring();
    // Given a large manufacturer with an approved budget: 20 + 15 + 30.
    let (score, why) = attribute_score(
        &s,
        &lead("search", "manufacturing", "large", Some("approved")),
    )
    .unwrap();
    assert_eq!(score, 65);
    let what: Vec<&str> = why.iter().map(|c| c.what.as_str()).collect();
    assert_eq!(
        what,
        vec![
            "industry = manufacturing",
            "company_size = large",
            "attributes.budget = approved"
        ]
    );
    // A cold-list lead of nothing else: -40, clamped to 0.
    let (score, _) = attribute_score(&s, &lead("cold_list", "saas", "small", None)).unwrap();
    assert_eq!(score, 0);
    // Without attribute rules there is no attribute part.
    assert_eq!(
        attribute_score(&Scoring::default(), &lead("x", "y", "z", None)),
        None
    );
}

#[test]
fn behaviour_points_fade_by_their_half_life_within_their_caps() {
    let s = scoring();
    let mut b = Behaviour::default();
    // Two replies on day 0: 30 points; 14 days later, half: 15.
    b.engage(&s, "email_reply", None, 0);
    b.engage(&s, "email_reply", None, 0);
    assert_eq!(b.score_at(&s, 0).unwrap().0, 30);
    assert_eq!(b.score_at(&s, 14 * DAY).unwrap().0, 15);
    // A third reply then: 15 + 15 = 30, and a fourth at once goes over the
    // kind's cap of 40.
    b.engage(&s, "email_reply", None, 14 * DAY);
    assert_eq!(b.score_at(&s, 14 * DAY).unwrap().0, 30);
    b.engage(&s, "email_reply", None, 14 * DAY);
    assert_eq!(b.score_at(&s, 14 * DAY).unwrap().0, 40);
    // Visits never fade; a producer's own points replace the policy's; a
    // kind the policy does not know counts for its producer points only.
    b.engage(&s, "web_visit", None, 14 * DAY);
    b.engage(&s, "web_visit", Some(5), 14 * DAY);
    b.engage(&s, "webinar", None, 14 * DAY);
    let (score, why) = b.score_at(&s, 14 * DAY).unwrap();
    assert_eq!(score, 47);
    assert_eq!(
        why.iter()
            .map(|c| (c.what.as_str(), c.points))
            .collect::<Vec<_>>(),
        vec![("email_reply", 40.0), ("web_visit", 7.0)]
    );
    // The sum stays within the policy's cap (100 by default).
    for _ in 0..40 {
        b.engage(&s, "web_visit", Some(10), 14 * DAY);
    }
    assert_eq!(b.score_at(&s, 14 * DAY).unwrap().0, 100);
}

#[test]
fn a_lead_remembers_a_bounded_number_of_interaction_kinds() {
    let s = scoring();
    let mut b = Behaviour::default();
    for i in 0..100 {
        b.engage(&s, &format!("kind_{i}"), Some(1), 0);
    }
    assert_eq!(
        b.kinds().count(),
        KINDS_PER_LEAD_MAX + 1,
        "16 kinds and `other`"
    );
    assert_eq!(b.score_at(&s, 0).unwrap().0, 100);
}

#[test]
fn the_combined_score_weighs_the_parts_present() {
    let s = scoring();
    // 30 / 30 / 40: (30*60 + 30*20 + 40*90) / 100 = 60.
    assert_eq!(s.combine(Some(60), Some(20), Some(90)), 60);
    // Without a model yet: (30*60 + 30*20) / 60 = 40.
    assert_eq!(s.combine(Some(60), Some(20), None), 40);
    assert_eq!(s.combine(None, None, None), 0);
    // Half up: (30*1 + 30*2) / 60 = 1.5 → 2.
    assert_eq!(s.combine(Some(1), Some(2), None), 2);
}

#[test]
fn a_scoring_section_that_cannot_work_is_refused_with_its_place() {
    let bad = |section: &str| parse(section).unwrap_err();
    let e = bad("[[attributes]]\nfield = \"colour\"\nequals = \"red\"\npoints = 5\n");
    assert!(
        e.contains("scoring.attributes[0]") && e.contains("colour"),
        "{e}"
    );
    let e = bad("[[attributes]]\nfield = \"industry\"\npoints = 5\n");
    assert!(e.contains("either equals or any_of"), "{e}");
    let e = bad("[behaviour.web_visit]\npoints = 2\nhalf_life = \"0s\"\n");
    assert!(
        e.contains("scoring.behaviour.web_visit") && e.contains("half_life"),
        "{e}"
    );
    let e = bad("[behaviour.x]\npoints = 500\n");
    assert!(
        e.contains("scoring.behaviour.x") && e.contains("-100..=100"),
        "{e}"
    );
    let e = bad("[weights]\nattribute = 0\nbehaviour = 0\npredictive = 0\n");
    assert!(e.contains("scoring.weights"), "{e}");
    // Durations as people write them, or milliseconds.
    let s = parse("[behaviour.web_visit]\npoints = 2\nhalf_life_ms = 3600000\n").unwrap();
    assert_eq!(s.behaviour["web_visit"].half_life_ms, Some(3_600_000));
}

fn features(channel: &str, kinds: &[&str]) -> Features {
    Features {
        fields: [
            channel.to_string(),
            "q4".into(),
            "inbound".into(),
            "east".into(),
            "saas".into(),
            "small".into(),
        ],
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
    }
}

#[test]
fn the_model_learns_which_leads_convert_and_says_why() {
    // Given outcomes: referral leads converted 8 of 10 times, cold-list
    // leads 1 of 10; leads that replied to an email converted 9 of 10.
    let mut learned = Counts::default();
    for i in 0..10 {
        learned.learn(&features("referral", &[]), i < 8);
        learned.learn(&features("cold_list", &[]), i < 1);
        learned.learn(&features("search", &["email_reply"]), i < 9);
        learned.learn(&features("search", &["web_visit"]), i < 2);
    }
    let mut model = Model::default();
    assert!(!model.ready(10));
    model.retrain(&learned, 5 * DAY);
    assert_eq!(
        (model.version, model.trained_at_ms, model.label().as_str()),
        (1, 5 * DAY, "nb-1")
    );
    assert!(model.ready(40) && !model.ready(41));
    // When leads are scored, then the order follows what was learned.
    let p = |f: Features| model.predict(&f).probability;
    let referral = p(features("referral", &[]));
    let cold = p(features("cold_list", &[]));
    let replied = p(features("search", &["email_reply"]));
    let visited = p(features("search", &["web_visit"]));
    assert!(referral > 0.5 && cold < 0.2, "{referral} {cold}");
    assert!(replied > visited, "{replied} {visited}");
    // An unseen channel is neither good nor bad evidence by itself.
    let unseen = model.predict(&features("podcast", &[]));
    assert!(unseen.probability > cold && unseen.probability < referral);
    // The explanation names the strongest feature first.
    let why = model.predict(&features("cold_list", &[]));
    assert_eq!(why.contributions[0].what, "channel = cold_list");
    assert!(why.contributions[0].points < 0.0);
    // Retraining with nothing new keeps the version.
    model.retrain(&Counts::default(), 6 * DAY);
    assert_eq!(model.version, 1);
}

/// README's "One score by hand", exactly.
#[test]
fn the_readme_worked_example_scores_47() {
    // Given 200 outcomes: of 40 converted leads 20 came by referral and 30
    // replied to an email; of 160 others 10 and 16; six channels; the
    // other fields the same for every lead.
    let others = ["search", "social", "content", "trade_show", "cold_list"];
    let mut learned = Counts::default();
    for (converted, leads, referrals, replies) in [(true, 40, 20, 30), (false, 160, 10, 16)] {
        for i in 0..leads {
            let channel = if i < referrals {
                "referral"
            } else {
                others[i % 5]
            };
            let kinds: &[&str] = if i < replies { &["email_reply"] } else { &[] };
            learned.learn(&features(channel, kinds), converted);
        }
    }
    let mut model = Model::default();
    model.retrain(&learned, DAY);
    // When a referral who replied is scored.
    let p = model.predict(&features("referral", &["email_reply"]));
    // Then: ln(41/161) + ln((21/47)/(11/167)) + ln((31/42)/(17/162)) + five
    // constant fields of ln((41/42)/(161/162)) each = 2.408, p = 0.917.
    let log_odds = (41f64 / 161.0).ln()
        + ((21.0 / 47.0) / (11.0 / 167.0f64)).ln()
        + ((31.0 / 42.0) / (17.0 / 162.0f64)).ln()
        + 5.0 * ((41.0 / 42.0) / (161.0 / 162.0f64)).ln();
    assert!((log_odds - 2.408).abs() < 1e-3, "{log_odds}");
    assert!((p.probability - 1.0 / (1.0 + (-log_odds).exp())).abs() < 1e-12);
    let predictive = (p.probability * 100.0).round() as u32;
    assert_eq!(predictive, 92);
    let top: Vec<(&str, String)> = p.contributions[..2]
        .iter()
        .map(|c| (c.what.as_str(), format!("{:+.2}", c.points)))
        .collect();
    assert_eq!(
        top,
        [
            ("email_reply", "+1.95".to_string()),
            ("channel = referral", "+1.91".to_string())
        ]
    );
    // And with 20 attribute and 15 behaviour points under the default
    // weights the score is 47.
    assert_eq!(
        Scoring::default().combine(Some(20), Some(15), Some(predictive)),
        47
    );
}

#[test]
fn auc_brier_log_loss_and_lift_match_hand_computed_values() {
    // Perfect, reversed and uninformative rankings.
    assert_eq!(auc(&[(0.9, true), (0.1, false)]), Some(1.0));
    assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
    assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
    assert_eq!(auc(&[(0.5, true), (0.6, true)]), None);
    // By hand: positives at 0.8 and 0.4, negatives at 0.6, 0.4 and 0.2:
    // pairs won 2 + 1 + 0.5 (tie) + 1 = 4.5 of 6.
    let s = [
        (0.8, true),
        (0.4, true),
        (0.6, false),
        (0.4, false),
        (0.2, false),
    ];
    assert_eq!(auc(&s), Some(0.75));
    // Brier: (0.2² + 0.6² + 0.6² + 0.4² + 0.2²) / 5 = 0.96 / 5; log-loss
    // by the same pairs.
    let e = evaluate(&s);
    assert!((e.brier - 0.192).abs() < 1e-12, "{}", e.brier);
    let want = -(0.8f64.ln() + 0.4f64.ln() + 0.4f64.ln() + 0.6f64.ln() + 0.8f64.ln()) / 5.0;
    assert!((e.log_loss - want).abs() < 1e-12);
    assert_eq!((e.leads, e.converted), (5, 2));
    // Lift: 100 leads, the top decile all converted, 20 converted in all.
    let many: Vec<(f64, bool)> = (0..100)
        .map(|i| (f64::from(i) / 100.0, !(10..90).contains(&i)))
        .collect();
    let e = evaluate(&many);
    assert_eq!(e.calibration.len(), 10);
    assert_eq!(e.calibration[9].observed_rate, 1.0);
    assert_eq!(e.lift_top_decile, Some(5.0));
}

mod fold_tests {
    use super::super::fold::{ScoreCard, Scorer};
    use super::*;
    use crate::domain::{LeadEngaged, LeadEvent};

    const T0: i64 = 1_793_491_200_000; // 2026-11-01, a UTC midnight

    fn scoring() -> Scoring {
        parse(
            "[[attributes]]\nfield = \"channel\"\nequals = \"referral\"\npoints = 30\n\
             [behaviour.email_reply]\npoints = 20\nhalf_life = \"7d\"\n\
             [behaviour.web_visit]\npoints = 2\n\
             [predictive]\nhorizon = \"5d\"\nretrain_every = \"1d\"\nmin_examples = 20\n",
        )
        .unwrap()
    }

    fn event(id: String, lead: &str, at: i64, body: EventBody) -> LeadEvent {
        build::event(&id, lead, body).at(at).event()
    }

    /// A history over 12 days: 40 leads a day, half by referral (4 in 5
    /// convert two days after creation, having replied to an email), half
    /// from a cold list (1 in 5 converts; the others only visit the site):
    /// 20 conversions a day.
    fn history() -> Vec<LeadEvent> {
        let mut out = Vec::new();
        for i in 0..480i64 {
            let lead = format!("L{i}");
            let at = T0 + (i / 40) * DAY + (i % 40) * 60_000;
            let referral = i % 2 == 0;
            let converts = if referral { i % 10 < 7 } else { i % 10 == 1 };
            let mut created = build::created(&format!("c{i}"), &lead)
                .channel(if referral { "referral" } else { "cold_list" })
                .at(at)
                .event();
            created.producer = "forms".into();
            out.push(created);
            let kind = if converts { "email_reply" } else { "web_visit" };
            out.push(event(
                format!("g{i}"),
                &lead,
                at + DAY,
                EventBody::Engaged(LeadEngaged {
                    kind: kind.into(),
                    points: None,
                    source: String::new(),
                    detail: String::new(),
                }),
            ));
            if converts {
                out.push(event(
                    format!("v{i}"),
                    &lead,
                    at + 2 * DAY,
                    EventBody::Converted(crate::domain::LeadConverted {
                        owner_id: "rep".into(),
                        deal_value: crate::domain::Money::new(
                            1,
                            crate::domain::Currency::parse("CNY").unwrap(),
                        ),
                        customer_id: String::new(),
                        expected_lifetime_value: None,
                    }),
                ));
            }
        }
        out.sort_by_key(|e| e.occurred_at_ms);
        out
    }

    fn run(scorer: &mut Scorer, s: &Scoring, events: &[LeadEvent]) -> Vec<ScoreCard> {
        let mut cards = Vec::new();
        for e in events {
            scorer.advance(s, e.occurred_at_ms);
            cards.extend(scorer.apply(s, e));
        }
        cards
    }

    #[test]
    fn a_score_at_t_is_the_same_whatever_comes_after_t() {
        let s = scoring();
        let all = history();
        let mut full = Scorer::default();
        let cards = run(&mut full, &s, &all);
        // Given the history cut at day 7, 12:00: when it is folded alone,
        // then it announces exactly the cards the whole history announced
        // up to then (outcomes learned later, and the later retrainings,
        // change none of them).
        let t = T0 + 7 * DAY + DAY / 2;
        let prefix: Vec<LeadEvent> = all
            .iter()
            .filter(|e| e.occurred_at_ms <= t)
            .cloned()
            .collect();
        let mut cut = Scorer::default();
        let early = run(&mut cut, &s, &prefix);
        let full_early: Vec<&ScoreCard> = cards.iter().filter(|c| c.at_ms <= t).collect();
        assert_eq!(early.iter().collect::<Vec<_>>(), full_early);
        // And the model in force at t learned only outcomes known by its
        // training at day 7, 00:00: the conversions two days after creation
        // of the leads of days 0-4 (20 a day), and the unconverted leads
        // whose 5-day horizon had passed, those of days 0-1 (20 a day).
        let model = cut.model();
        assert_eq!(model.trained_at_ms, T0 + 7 * DAY);
        assert_eq!(model.examples(), 5 * 20 + 2 * 20);
        // Trained every day from day 3 (the first outcomes, day 0's
        // conversions, are known on day 2): versions 1 to 5 by day 7, and
        // no card up to t names a later one.
        assert_eq!(model.label(), "nb-5");
        let version = |c: &ScoreCard| {
            c.model_version
                .trim_start_matches("nb-")
                .parse::<u32>()
                .ok()
        };
        assert!(early.iter().filter_map(version).all(|v| v <= 5));
        assert!(
            cards.iter().filter_map(version).any(|v| v > 5),
            "later models exist"
        );
        // The model learned something real: a referral lead that replied
        // scores far above a cold one that only visited.
        let last = |channel_even: bool| {
            cards
                .iter()
                .rev()
                .find(|c| {
                    c.predictive.is_some()
                        && c.lead_id[1..].parse::<i64>().unwrap() % 2 == i64::from(!channel_even)
                        && c.rules.iter().any(|r| {
                            r.what
                                == if channel_even {
                                    "email_reply"
                                } else {
                                    "web_visit"
                                }
                        })
                })
                .unwrap()
        };
        let (hot, cold) = (last(true), last(false));
        assert!(
            hot.predictive.unwrap() >= 80 && cold.predictive.unwrap() <= 20,
            "{hot:?} {cold:?}"
        );
        assert!(!hot.features.is_empty());
    }

    #[test]
    fn a_scorer_restored_from_its_snapshot_goes_on_bit_for_bit() {
        let s = scoring();
        let all = history();
        let mut straight = Scorer::default();
        let want = run(&mut straight, &s, &all);
        let (first, rest) = all.split_at(all.len() / 2);
        let mut before = Scorer::default();
        let mut got = run(&mut before, &s, first);
        let bytes = bincode::serialize(&before).unwrap();
        let mut after: Scorer = bincode::deserialize(&bytes).unwrap();
        assert_eq!(after, before);
        got.extend(run(&mut after, &s, rest));
        assert_eq!(got, want);
        assert_eq!(after, straight);
        // Converted leads are forgotten: only open ones are kept.
        assert_eq!(after.open_leads(), 480 - 12 * 20);
    }

    #[test]
    fn a_score_is_announced_when_first_known_and_when_it_moves_enough() {
        let s = scoring();
        let mut scorer = Scorer::default();
        let mut c = build::created("c", "L").channel("search").at(T0).event();
        c.producer = "forms".into();
        scorer.advance(&s, T0);
        // Created: announced (0 attribute, 0 behaviour: 0).
        let first = scorer.apply(&s, &c).unwrap();
        assert_eq!(
            (first.attribute, first.behaviour, first.combined),
            (Some(0), Some(0), 0)
        );
        let visit = |n: i64| {
            event(
                format!("g{n}"),
                "L",
                T0 + n,
                EventBody::Engaged(LeadEngaged {
                    kind: "web_visit".into(),
                    points: None,
                    source: String::new(),
                    detail: String::new(),
                }),
            )
        };
        // Visits of 2 points move the combined score by 1 each (weights
        // 30/30 over two parts): silent until it has moved by 5.
        let mut announced = Vec::new();
        for n in 1..=12 {
            scorer.advance(&s, T0 + n);
            if let Some(card) = scorer.apply(&s, &visit(n)) {
                announced.push((n, card.behaviour.unwrap(), card.combined));
            }
        }
        assert_eq!(announced, vec![(5, 10, 5), (10, 20, 10)]);
    }
}
