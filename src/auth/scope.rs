//! Scopes (API.md, "API keys"): `read:X` and `write:X` for each of the five resources, and
//! `write:X` does not imply `read:X`. A set is a bitmask, so the check on every request is one AND.

use nestgate_contract::{Action, Resource};
use std::fmt;

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u16);

/// Every scope's name, in the order API.md lists them; bit `i` of a [`Scopes`] is `NAMES[i]`.
const NAMES: [&str; 10] = [
    "read:invoices",
    "write:invoices",
    "read:clients",
    "write:clients",
    "read:payments",
    "write:payments",
    "read:products",
    "write:products",
    "read:expenses",
    "write:expenses",
];

impl Scopes {
    pub const NONE: Scopes = Scopes(0);
    pub const ALL: Scopes = Scopes((1 << NAMES.len()) - 1);

    /// A list separated by single spaces (`"read:invoices write:clients"`, RFC 6749 §3.3);
    /// `Err` names the first unknown scope, or is empty when the separators are not single
    /// spaces (a tab, a line feed, two spaces in a row, a space at either end). Repeats are
    /// harmless; an empty text is the empty set.
    ///
    /// Every request's token is read with this, so it makes one pass over the text.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        if text.is_empty() {
            return Ok(Scopes::NONE);
        }
        if text.contains(|c: char| c.is_whitespace() && c != ' ') {
            return Err(String::new());
        }
        let mut set = Scopes::NONE;
        let mut unknown = None;
        for name in text.split(' ') {
            if name.is_empty() {
                return Err(String::new());
            }
            match Self::bit(name) {
                Some(bit) => set.0 |= bit,
                None => unknown = unknown.or(Some(name)),
            }
        }
        unknown.map_or(Ok(set), |name| Err(name.to_string()))
    }

    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        names.into_iter().try_fold(Scopes::NONE, |set, name| {
            Self::bit(name)
                .map(|bit| Scopes(set.0 | bit))
                .ok_or_else(|| name.to_string())
        })
    }

    fn bit(name: &str) -> Option<u16> {
        NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
    }

    /// The one scope a call needs: `read:invoices` for reads (the PDF included), else
    /// `write:invoices`.
    pub fn required(resource: Resource, action: Action) -> Scopes {
        let read = match resource {
            Resource::Invoices => 0,
            Resource::Clients => 2,
            Resource::Payments => 4,
            Resource::Products => 6,
            Resource::Expenses => 8,
        };
        Scopes(1 << (read + usize::from(!action.is_read())))
    }

    pub fn contains(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| name)
    }
}

/// Space-separated, as OAuth writes scopes.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_spaces_separate_scopes() {
        for text in [
            "read:invoices\twrite:clients",
            "read:invoices\nwrite:clients",
            "read:invoices  write:clients",
            " read:invoices",
            "read:invoices ",
        ] {
            assert_eq!(Scopes::parse(text), Err(String::new()), "{text:?}");
        }
        assert!(Scopes::parse("read:invoices write:clients").is_ok());
    }

    #[test]
    fn parse_and_print() {
        let s = Scopes::parse("write:clients read:invoices read:invoices").unwrap();
        assert_eq!(s.to_string(), "read:invoices write:clients");
        assert_eq!(Scopes::parse("read:invoice").unwrap_err(), "read:invoice");
        assert_eq!(Scopes::parse("").unwrap(), Scopes::NONE);
        assert_eq!(
            Scopes::parse(&Scopes::ALL.to_string()).unwrap(),
            Scopes::ALL
        );
    }

    #[test]
    fn write_does_not_imply_read() {
        let write = Scopes::parse("write:invoices").unwrap();
        assert!(!write.contains(Scopes::required(Resource::Invoices, Action::Get)));
        assert!(write.contains(Scopes::required(Resource::Invoices, Action::Create)));
        assert!(Scopes::ALL.contains(write));
        assert!(!write.contains(Scopes::ALL));
    }

    /// `required` picks its bit by position: it must name the scope API.md names.
    #[test]
    fn every_call_requires_its_named_scope() {
        for resource in Resource::ALL {
            for action in Action::ALL {
                let verb = if action.is_read() { "read" } else { "write" };
                let name = format!("{verb}:{}", resource.as_str());
                assert_eq!(
                    Scopes::required(resource, action).to_string(),
                    name,
                    "{resource:?} {action:?}"
                );
            }
        }
    }

    #[test]
    fn a_bad_separator_is_reported_before_an_unknown_name() {
        assert_eq!(Scopes::parse("bogus read:invoices  x"), Err(String::new()));
        assert_eq!(
            Scopes::parse("read:invoices bogus other"),
            Err("bogus".to_string())
        );
    }
}
