//! Loading YAML configuration files with errors a person can act on: one line naming the file,
//! the line and the key.

use serde::de::DeserializeOwned;
use std::path::Path;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Reads and parses a YAML file into `T` (unknown keys are errors when `T` denies them).
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read it: {e}", path.display())))?;
    parse_yaml(&path.display().to_string(), &text)
}

/// Parses YAML text into `T`, naming `origin` in errors.
pub fn parse_yaml<T: DeserializeOwned>(origin: &str, text: &str) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError(describe(origin, &e)))
}

/// `origin: line N: what is wrong` (serde_yaml's own text, without its position suffix).
pub fn describe(origin: &str, e: &serde_yaml::Error) -> String {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    let msg = msg.replace('\n', " ");
    match e.location() {
        Some(loc) => format!("{origin}: line {}: {msg}", loc.line()),
        None => format!("{origin}: {msg}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Conf {
        id: u32,
        #[serde(default)]
        name: String,
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse_yaml::<Conf>("node.yaml", "id: 1\nnmae: x\n")
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("node.yaml: line 2: unknown field `nmae`"),
            "{e}"
        );
        let e = parse_yaml::<Conf>("node.yaml", "name: x\n").unwrap_err().0;
        assert!(e.contains("missing field `id`"), "{e}");
        let e = parse_yaml::<Conf>("node.yaml", "id: [\n").unwrap_err().0;
        assert!(e.starts_with("node.yaml: line"), "{e}");
        assert!(!e.contains('\n'));
    }
}
