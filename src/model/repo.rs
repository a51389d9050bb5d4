//! Repositories as namespaces: a verdict, event or outcome row may name the repository it
//! belongs to (`"repo": "gitea:profit/lakehouse"`, chosen by the client). Records without one
//! form the default namespace, which is where every legacy record and legacy client lives.
//!
//! A PR number and a `sig_hash` (`pr{N}-{sha8}`) name a PR only within one repository, so every
//! lookup by PR, sig_hash, claim or finding is scoped to one repository.

use serde_json::{Map, Value};

use super::{FieldError, describe};

/// Longest repository name accepted: it is part of index keys and of exported lines.
pub const MAX_REPO_BYTES: usize = 200;

/// A validated repository name; the default namespace is `Repo::default()` (the empty name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repo(String);

impl Repo {
    /// The name as given, or `""` for the default namespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }

    /// `Some(name)` for a named repository, `None` for the default namespace.
    pub fn name(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }

    /// Validates a name from a query parameter or a body field: at most [`MAX_REPO_BYTES`]
    /// bytes, no control characters. The empty name is the default namespace.
    pub fn parse(field: &str, name: &str) -> Result<Repo, FieldError> {
        if name.len() > MAX_REPO_BYTES {
            return Err(FieldError::new(
                field,
                format!(
                    "{field} must be at most {MAX_REPO_BYTES} bytes, got {}",
                    name.len()
                ),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                format!("{field} must not contain control characters, got {name:?}"),
            ));
        }
        Ok(Repo(name.to_owned()))
    }

    /// The `repo` field of a JSON object: absent, null or `""` is the default namespace; a
    /// string is validated; anything else is refused.
    pub fn of_object(obj: &Map<String, Value>) -> Result<Repo, FieldError> {
        match obj.get("repo") {
            None | Some(Value::Null) => Ok(Repo::default()),
            Some(Value::String(name)) => Repo::parse("repo", name),
            Some(other) => Err(FieldError::new(
                "repo",
                format!("repo must be a string, got {}", describe(other)),
            )),
        }
    }

    /// The `repo` of a record in a legacy shape (an observer event, an outcome row): as
    /// [`Repo::of_object`], except that a `repo` that is not a string, or not a valid name,
    /// names no repository (it is a legacy client's own field, which the legacy writers took
    /// whatever it held): the record is in the default namespace, kept as it came, as the
    /// import keeps such a line ([`Repo::of_line`]).
    pub fn of_legacy_record(obj: &Map<String, Value>) -> Repo {
        Repo::of_line(obj)
    }

    /// Like [`Repo::of_object`] for a line of a legacy file, which is history, not a request:
    /// a `repo` that is not a valid name is ignored (the line is kept in the default namespace).
    pub fn of_line(obj: &Map<String, Value>) -> Repo {
        Repo::of_line_warning(obj, |_| {})
    }

    /// [`Repo::of_line`], saying to `warn` why a string `repo` that is not a valid name is not
    /// used.
    pub fn of_line_warning(obj: &Map<String, Value>, warn: impl FnOnce(String)) -> Repo {
        Repo::of_legacy_warning(obj.get("repo").and_then(Value::as_str), warn)
    }

    /// The repository of a legacy line whose `repo` is `name` when it is a string: a name that
    /// is not valid leaves the line in the default namespace, saying to `warn` why.
    pub fn of_legacy_warning(name: Option<&str>, warn: impl FnOnce(String)) -> Repo {
        match name.map(|name| Repo::parse("repo", name)) {
            Some(Ok(repo)) => repo,
            Some(Err(e)) => {
                warn(e.message);
                Repo::default()
            }
            None => Repo::default(),
        }
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn absent_null_and_empty_are_the_default_namespace() {
        for body in ["{}", r#"{"repo":null}"#, r#"{"repo":""}"#] {
            assert!(Repo::of_object(&obj(body)).unwrap().is_default(), "{body}");
        }
        let named = Repo::of_object(&obj(r#"{"repo":"gitea:profit/lakehouse"}"#)).unwrap();
        assert_eq!(named.name(), Some("gitea:profit/lakehouse"));
    }

    #[test]
    fn a_legacy_record_s_repo_that_is_not_a_valid_name_is_the_default_namespace() {
        let long = format!(r#"{{"repo":"{}"}}"#, "r".repeat(MAX_REPO_BYTES + 1));
        for body in [
            r#"{"repo":5}"#,
            r#"{"repo":{"owner":"o","name":"n"}}"#,
            r#"{"repo":[]}"#,
            r#"{"repo":true}"#,
            "{\"repo\":\"a\\u0000b\"}",
            &long,
        ] {
            assert!(Repo::of_object(&obj(body)).is_err(), "{body}");
            assert!(Repo::of_legacy_record(&obj(body)).is_default(), "{body}");
        }
        let named = Repo::of_legacy_record(&obj(r#"{"repo":"gitea:profit/lakehouse"}"#));
        assert_eq!(named.name(), Some("gitea:profit/lakehouse"));
    }

    #[test]
    fn bad_names_are_refused_with_the_field() {
        let long = format!(r#"{{"repo":"{}"}}"#, "r".repeat(MAX_REPO_BYTES + 1));
        let cases = [
            (long.as_str(), "repo must be at most 200 bytes, got 201"),
            (r#"{"repo":7}"#, "repo must be a string, got 7"),
            (
                r#"{"repo":"a\nb"}"#,
                r#"repo must not contain control characters, got "a\nb""#,
            ),
        ];
        for (body, message) in cases {
            let err = Repo::of_object(&obj(body)).unwrap_err();
            assert_eq!(
                (err.field.as_str(), err.message.as_str()),
                ("repo", message)
            );
            assert!(Repo::of_line(&obj(body)).is_default());
        }
        let exact = format!(r#"{{"repo":"{}"}}"#, "r".repeat(MAX_REPO_BYTES));
        assert!(Repo::of_object(&obj(&exact)).is_ok());
    }
}
