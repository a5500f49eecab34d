//! Key loading: length, file permissions, environment.

use std::os::unix::fs::PermissionsExt;

use persist_core::{Key, KeyError};

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, [3u8; 32]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Key::from_file(&path).unwrap_err();
    assert!(matches!(
        err,
        KeyError::InsecurePermissions { mode: 0o644, .. }
    ));
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = Key::from_file(&path).unwrap();
    assert_eq!(key.id(), Key::from_bytes(vec![3; 32]).unwrap().id());
}

#[test]
fn short_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, [3u8; 31]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        Key::from_file(&path),
        Err(KeyError::TooShort { len: 31 })
    ));
}

#[test]
fn missing_key_file_is_a_clear_error() {
    let err = Key::from_file("/nonexistent/persist.key").unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/persist.key"));
}

#[test]
fn hex_keys_parse_and_bad_hex_is_typed() {
    assert_eq!(
        Key::from_hex(&format!(" {} \n", "0f".repeat(32)))
            .unwrap()
            .secret(),
        &[0x0f; 32]
    );
    assert!(matches!(Key::from_hex("zz"), Err(KeyError::NotHex)));
    assert!(matches!(
        Key::from_hex(&"0f".repeat(16)),
        Err(KeyError::TooShort { len: 16 })
    ));
    assert!(matches!(
        Key::from_env("PERSIST_TEST_KEY_THAT_IS_NEVER_SET"),
        Err(KeyError::EnvMissing { .. })
    ));
}

#[test]
fn generated_keys_differ_and_debug_hides_the_secret() {
    let a = Key::generate().unwrap();
    let b = Key::generate().unwrap();
    assert_ne!(a.id(), b.id());
    let shown = format!("{a:?}");
    assert!(!shown.contains(&hex::encode(a.secret())));
    assert!(shown.contains(&a.id().to_string()));
}
