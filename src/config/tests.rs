//! The config's tests: validation, and `deploy/leadflow.toml` kept the
//! defaults.

use super::*;

#[test]
fn owned_partitions_are_static_by_list_or_by_ordinal_and_checked() {
    let k = |own: &str, replicas: u32, ordinal: Option<u32>| KafkaConfig {
        own_partitions: own.into(),
        replicas,
        ordinal,
        ..KafkaConfig::default()
    };
    assert_eq!(k("", 0, None).ownership(12, "h").unwrap(), Ownership::Group);
    assert_eq!(
        k("0-2, 8,1", 0, None).ownership(12, "h").unwrap(),
        Ownership::Static(vec![0, 1, 2, 8])
    );
    // A StatefulSet pod's ordinal comes from its host name.
    assert_eq!(
        k("ordinal", 3, None).ownership(12, "leadflow-2").unwrap(),
        Ownership::Static(vec![2, 5, 8, 11])
    );
    assert_eq!(
        k("ordinal", 3, Some(0)).ownership(12, "x").unwrap(),
        Ownership::Static(vec![0, 3, 6, 9])
    );
    // Every engine of a set owns a share, and each partition one owner.
    let mut all: Vec<i32> = (0..5)
        .flat_map(
            |o| match k("ordinal", 5, Some(o)).ownership(12, "").unwrap() {
                Ownership::Static(p) => p,
                Ownership::Group => unreachable!(),
            },
        )
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..12).collect::<Vec<_>>());
    for (bad, says) in [
        (
            k("0-12", 0, None),
            "names partition 12, but the events topic has 12",
        ),
        (k("five", 0, None), "expected partitions and ranges"),
        (k("3-1", 0, None), "expected partitions and ranges"),
        (k("ordinal", 0, None), "needs kafka.replicas"),
        (k("ordinal", 3, None), "ends in no number"),
        (k("ordinal", 3, Some(3)), "not below kafka.replicas"),
        (
            k("ordinal", 20, Some(15)),
            "leaves this engine no partition",
        ),
    ] {
        let e = bad.ownership(12, "host").unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    let c: Config = toml::from_str("[kafka]\nown_partitions = \"0-x\"").unwrap();
    assert!(c.validate().is_err(), "a bad list fails at load");
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let c: Config = toml::from_str("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.projection.follow_up_sla_ms, 86_400_000);
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    assert!(toml::from_str::<Config>("[log]\nbatch_size = 5").is_err());
    let c: Config = toml::from_str("[log]\nbatch_events_max = 0").unwrap();
    assert!(c.validate().is_err());
}

mod documented_file {
    use super::*;

    /// `deploy/leadflow.toml` documents every key with its default; keep
    /// the two in step.
    #[test]
    fn the_documented_config_file_is_the_defaults() {
        let text = include_str!("../../deploy/leadflow.toml");
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c, Config::default());
    }
}
