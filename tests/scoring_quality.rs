//! The predictive score against the best any model could do: on a simulated
//! history the simulator knows each lead's true probability of conversion.

use leadflow::domain::time::MS_PER_DAY;
use leadflow::policy::scoring::{Predictive, Scoring};
use leadflow::sim::{scoring::measure, SimConfig};

#[test]
fn the_model_ranks_held_out_leads_nearly_as_well_as_their_true_probabilities() {
    let config = SimConfig {
        leads: 20_000,
        days: 90,
        ..SimConfig::default()
    };
    let scoring = Scoring {
        predictive: Some(Predictive::default()),
        ..Scoring::default()
    };
    let start = config.start_ms;
    let q = measure(
        config,
        &scoring,
        start + 45 * MS_PER_DAY,
        start + 70 * MS_PER_DAY,
    );
    eprintln!(
        "model AUC {:?}, true probabilities' AUC {:?}, over {} held-out leads ({} converted); \
         {} model versions over {} events",
        q.model.auc, q.truth.auc, q.model.leads, q.model.converted, q.model_versions, q.events
    );
    // Enough held-out leads and conversions for the AUCs to mean something
    // (its standard error is about 0.01 here), from a model retrained daily.
    assert!(q.model.leads > 5_000 && q.model.converted > 300, "{q:?}");
    assert!(q.model_versions >= 60, "{}", q.model_versions);
    let ratio = q
        .auc_ratio()
        .expect("both outcomes among the held-out leads");
    assert!(ratio >= 0.9, "model AUC / true AUC = {ratio:.3}");
    // The model ranks: its top decile converts well above the average.
    assert!(q.model.lift_top_decile.expect("ten deciles") > 1.5, "{q:?}");
}
