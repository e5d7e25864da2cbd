use super::*;

#[test]
fn defaults_come_from_config_toml() {
    let c = Config::default();
    assert_eq!(c.model.name, "smollm2-135m");
    assert_eq!(c.chat.overflow, OverflowPolicy::DropOldest);
    c.validate().unwrap();
}

#[test]
fn user_file_overrides_only_what_it_names() {
    let c = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntemperature = 0.2\n").unwrap();
    assert_eq!(c.sampling.temperature, 0.2);
    assert_eq!(c.sampling.top_k, Config::default().sampling.top_k);
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let text = b"[model]\nname = \"x\"\n\n[sampling]\ntempreature = 0.5\n";
    let e = Config::parse_file(Path::new("/tmp/u.toml"), text).unwrap_err().to_string();
    assert!(e.starts_with("/tmp/u.toml:5:1: "), "{e}");
    assert!(e.contains("tempreature"), "{e}");
    assert!(e.contains("sampling.tempreature"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn wrong_type_names_the_key() {
    let e = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntop_k = \"many\"\n").unwrap_err().to_string();
    assert!(e.contains("u.toml:2:"), "{e}");
    assert!(e.contains("sampling.top_k"), "{e}");
}

#[test]
fn syntax_error_has_position() {
    let e = Config::parse_file(Path::new("u.toml"), b"[model\nname = 1").unwrap_err().to_string();
    assert!(e.starts_with("u.toml:1:"), "{e}");
}

#[test]
fn env_overrides_file_with_typed_values() {
    let mut c = Config::default();
    let used = c
        .apply_env([
            ("MOAT_SAMPLING_TEMPERATURE".to_string(), "0".to_string()),
            ("MOAT_MODELS_DIR".to_string(), "/data/m".to_string()),
            ("MOAT_SAMPLING_STOP".to_string(), "[\"###\"]".to_string()),
            ("MOAT_UNRELATED".to_string(), "x".to_string()),
        ])
        .unwrap();
    assert_eq!(used.len(), 3);
    assert_eq!(c.sampling.temperature, 0.0);
    assert_eq!(c.models.dir, "/data/m");
    assert_eq!(c.sampling.stop, vec!["###".to_string()]);
}

#[test]
fn bad_env_value_is_reported() {
    let mut c = Config::default();
    let e = c.apply_env([("MOAT_MODEL_CONTEXT".to_string(), "big".to_string())]).unwrap_err();
    assert!(e.to_string().contains("MOAT_MODEL_CONTEXT=big"), "{e}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let c = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntop_p = 2.0\n").unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("sampling.top_p"));
    let c = Config::parse_file(Path::new("u.toml"), b"[model]\ntemplate = \"weird\"\n").unwrap();
    assert!(c.validate().is_err());
}
