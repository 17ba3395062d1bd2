//! Domain types and their validation rules, shared by the CLI, the server and the jobs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a person may do. Stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches titles.
    Viewer,
    /// Submits suspect files and reads cases.
    Analyst,
    /// Reads cases, downloads and verifies evidence reports.
    Legal,
    /// Everything, including packaging, users and keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Legal, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Legal => "legal",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("unknown role '{0}': expected one of viewer, analyst, legal, admin")]
    UnknownRole(String),
    #[error("invalid user name '{0}': use 1 to 64 letters, digits, '.', '_' or '-'")]
    Username(String),
    #[error("invalid API key name '{0}': use 1 to 64 letters, digits, '.', '_' or '-'")]
    ApiKeyName(String),
    #[error("invalid title: {0}")]
    Title(&'static str),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is too short: at least {min} characters are required")]
    ShortPassword { min: usize },
    #[error("the password is too long: at most {max} bytes are accepted")]
    LongPassword { max: usize },
}

impl ValidationError {
    /// The stable error code of the wire protocol.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::UnknownRole(_) => "invalid_role",
            ValidationError::Username(_) => "invalid_username",
            ValidationError::ApiKeyName(_) => "invalid_api_key_name",
            ValidationError::Title(_) => "invalid_title",
            ValidationError::EmptyPassword
            | ValidationError::ShortPassword { .. }
            | ValidationError::LongPassword { .. } => "invalid_password",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ValidationError::UnknownRole(s.to_string()))
    }
}

fn is_simple_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a user name: 1-64 characters from `[A-Za-z0-9._-]`.
pub fn validate_username(name: &str) -> Result<(), ValidationError> {
    if is_simple_name(name) {
        Ok(())
    } else {
        Err(ValidationError::Username(name.to_string()))
    }
}

/// Checks an API key name with the same rule as user names.
pub fn validate_api_key_name(name: &str) -> Result<(), ValidationError> {
    if is_simple_name(name) {
        Ok(())
    } else {
        Err(ValidationError::ApiKeyName(name.to_string()))
    }
}

pub const MAX_TITLE_CHARS: usize = 200;

/// Checks a title: not blank, at most 200 characters, no control characters.
pub fn validate_title(title: &str) -> Result<(), ValidationError> {
    if title.trim().is_empty() {
        return Err(ValidationError::Title("it is empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ValidationError::Title("it is longer than 200 characters"));
    }
    if title.chars().any(char::is_control) {
        return Err(ValidationError::Title("it contains control characters"));
    }
    Ok(())
}

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a new password: at least 10 characters, at most 1 KiB.
pub fn validate_new_password(password: &str) -> Result<(), ValidationError> {
    if password.is_empty() {
        return Err(ValidationError::EmptyPassword);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ValidationError::ShortPassword {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ValidationError::LongPassword {
            max: MAX_PASSWORD_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_is_named() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let err = "superuser".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("superuser"));
        assert!("Admin".parse::<Role>().is_err(), "roles are case-sensitive");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_username("alice.b-1_x").is_ok());
        for bad in ["", "a b", "ä", "x/y", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
            assert!(validate_api_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn titles_are_checked() {
        assert!(validate_title("Big Buck Bunny (2008)").is_ok());
        for bad in ["", "   ", "a\nb", &"x".repeat(201)] {
            assert!(validate_title(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_checked() {
        assert_eq!(
            validate_new_password(""),
            Err(ValidationError::EmptyPassword)
        );
        assert!(matches!(
            validate_new_password("short"),
            Err(ValidationError::ShortPassword { min: 10 })
        ));
        assert!(validate_new_password("ten chars!").is_ok());
        assert!(validate_new_password(&"x".repeat(2000)).is_err());
    }
}
