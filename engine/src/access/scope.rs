//! SMART on FHIR scopes, v1 and v2, read from a token's `scope` claim.
//!
//! A resource scope is `context/Type.permissions[?query]`:
//! - context: `patient` (the token's patient compartment), `user` (what the user may see) or
//!   `system` (a backend service);
//! - `Type` a resource type, or `*` for every type;
//! - permissions: v2 letters in the order `c r u d s` (create; read, vread and instance
//!   history; update and patch; delete; search and type and system history), or the v1 words
//!   `read` (= `rs`), `write` (= `cud`) and `*` (= `cruds`);
//! - for v2 only, a granular query (`?category=laboratory`) that narrows the scope to the
//!   resources matching it.
//!
//! Other scopes (`openid`, `fhirUser`, `launch/patient`, `offline_access`) are kept as they are;
//! a scope that looks like a resource scope but breaks these rules grants nothing and is listed
//! as refused, so a token never grants more than it plainly says.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Whose data a scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    /// The patient of the token's `patient` claim: that compartment only.
    Patient,
    /// What the user (`fhirUser`) may reach, as roles say.
    User,
    /// A system acting on its own behalf.
    System,
}

/// What a scope lets a client do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// `c`: create.
    pub create: bool,
    /// `r`: read, vread, instance history.
    pub read: bool,
    /// `u`: update, patch.
    pub update: bool,
    /// `d`: delete.
    pub delete: bool,
    /// `s`: search, type and system history.
    pub search: bool,
}

impl Permissions {
    const ALL: Permissions = Permissions {
        create: true,
        read: true,
        update: true,
        delete: true,
        search: true,
    };

    /// v2 letters, in order, each at most once (`rs`, `cruds`, `cud`).
    fn from_letters(text: &str) -> Option<Permissions> {
        let mut permissions = Permissions::default();
        let mut last = 0;
        for letter in text.chars() {
            let rank = match letter {
                'c' => 1,
                'r' => 2,
                'u' => 3,
                'd' => 4,
                's' => 5,
                _ => return None,
            };
            if rank <= last {
                return None;
            }
            last = rank;
            match letter {
                'c' => permissions.create = true,
                'r' => permissions.read = true,
                'u' => permissions.update = true,
                'd' => permissions.delete = true,
                _ => permissions.search = true,
            }
        }
        (last > 0).then_some(permissions)
    }

    /// Whether these permissions allow `interaction`.
    pub fn allow(&self, interaction: Interaction) -> bool {
        match interaction {
            Interaction::Create => self.create,
            Interaction::Read => self.read,
            Interaction::Update => self.update,
            Interaction::Delete => self.delete,
            Interaction::Search => self.search,
        }
    }
}

/// An interaction as scopes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// create.
    Create,
    /// read, vread, instance history.
    Read,
    /// update (update-as-create included), patch.
    Update,
    /// delete.
    Delete,
    /// search, type and system history.
    Search,
}

/// One resource scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Whose data.
    pub context: Context,
    /// The resource type; `None` for `*`.
    pub resource: Option<String>,
    /// What it allows.
    pub permissions: Permissions,
    /// A granular scope's query, decoded pairs (`category`, `laboratory`); empty otherwise.
    pub query: Vec<(String, String)>,
}

impl Scope {
    /// Whether the scope covers `type_name` and `interaction` (its query aside).
    pub fn covers(&self, type_name: &str, interaction: Interaction) -> bool {
        self.resource.as_deref().is_none_or(|t| t == type_name)
            && self.permissions.allow(interaction)
    }
}

/// The scopes of a token, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// The resource scopes.
    pub resources: Vec<Scope>,
    /// Other scopes, as given (`openid`, `launch/patient`, ...).
    pub other: Vec<String>,
    /// Resource scopes that break the rules, granting nothing.
    pub refused: Vec<String>,
}

impl Scopes {
    /// Reads a space-separated `scope` claim.
    pub fn parse(claim: &str) -> Scopes {
        let mut scopes = Scopes::default();
        for token in claim.split_ascii_whitespace() {
            match parse_one(token) {
                Parsed::Resource(scope) => scopes.resources.push(scope),
                Parsed::Other => scopes.other.push(token.to_string()),
                Parsed::Refused => scopes.refused.push(token.to_string()),
            }
        }
        scopes
    }

    /// The scopes that cover `type_name` and `interaction` in `context`.
    pub fn granting<'s>(
        &'s self,
        context: Context,
        type_name: &'s str,
        interaction: Interaction,
    ) -> impl Iterator<Item = &'s Scope> {
        self.resources
            .iter()
            .filter(move |scope| scope.context == context && scope.covers(type_name, interaction))
    }
}

enum Parsed {
    Resource(Scope),
    Other,
    Refused,
}

fn parse_one(token: &str) -> Parsed {
    let Some((context, rest)) = token.split_once('/') else {
        return Parsed::Other;
    };
    let context = match context {
        "patient" => Context::Patient,
        "user" => Context::User,
        "system" => Context::System,
        // `launch/patient`, `launch/encounter` and the like.
        _ => return Parsed::Other,
    };
    let (resource_part, query) = match rest.split_once('?') {
        Some((resource_part, query)) => (resource_part, Some(query)),
        None => (rest, None),
    };
    let Some((resource, permissions)) = resource_part.split_once('.') else {
        return Parsed::Refused;
    };
    let resource = match resource {
        "*" => None,
        name if crate::model::TYPES
            .iter()
            .any(|def| def.name == name && def.is_concrete_resource()) =>
        {
            Some(name.to_string())
        }
        _ => return Parsed::Refused,
    };
    let (permissions, v2) = match permissions {
        "read" => (
            Permissions {
                read: true,
                search: true,
                ..Permissions::default()
            },
            false,
        ),
        "write" => (
            Permissions {
                create: true,
                update: true,
                delete: true,
                ..Permissions::default()
            },
            false,
        ),
        "*" => (Permissions::ALL, false),
        letters => match Permissions::from_letters(letters) {
            Some(permissions) => (permissions, true),
            None => return Parsed::Refused,
        },
    };
    let mut pairs = Vec::new();
    if let Some(query) = query {
        // Granular scopes are a v2 feature; a v1 scope with a query is not one.
        if !v2 || query.is_empty() {
            return Parsed::Refused;
        }
        for pair in query.split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                return Parsed::Refused;
            };
            let (Some(name), Some(value)) = (decode(name), decode(value)) else {
                return Parsed::Refused;
            };
            if name.is_empty() || value.is_empty() {
                return Parsed::Refused;
            }
            pairs.push((name, value));
        }
    }
    Parsed::Resource(Scope {
        context,
        resource,
        permissions,
        query: pairs,
    })
}

/// Percent-decoding; `None` for a malformed escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = text.get(at + 1..at + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(token: &str) -> Scope {
        let scopes = Scopes::parse(token);
        assert_eq!(scopes.resources.len(), 1, "{token}: {scopes:?}");
        scopes.resources[0].clone()
    }

    #[test]
    fn v1_words_mean_their_v2_letters() {
        let read = one("patient/Observation.read");
        assert_eq!(
            (read.context, read.resource.as_deref()),
            (Context::Patient, Some("Observation"))
        );
        assert!(read.covers("Observation", Interaction::Read));
        assert!(read.covers("Observation", Interaction::Search));
        assert!(!read.covers("Observation", Interaction::Create));
        assert!(!read.covers("Patient", Interaction::Read));
        let write = one("user/*.write");
        assert!(write.covers("Patient", Interaction::Create));
        assert!(write.covers("Encounter", Interaction::Delete));
        assert!(!write.covers("Encounter", Interaction::Read));
        assert_eq!(one("system/*.*").permissions, Permissions::ALL);
    }

    #[test]
    fn v2_letters_are_in_order_and_once_each() {
        let rs = one("patient/Observation.rs");
        assert!(rs.permissions.read && rs.permissions.search && !rs.permissions.update);
        assert_eq!(one("user/Patient.cruds").permissions, Permissions::ALL);
        for bad in [
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.x",
            "patient/Observation.",
            "patient/Observation",
        ] {
            let scopes = Scopes::parse(bad);
            assert!(scopes.resources.is_empty(), "{bad}");
            assert_eq!(scopes.refused, [bad]);
        }
    }

    #[test]
    fn granular_scopes_carry_their_query_and_v1_scopes_cannot() {
        let lab = one("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category%7Claboratory");
        assert_eq!(
            lab.query,
            [(
                String::from("category"),
                String::from(
                    "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
                )
            )]
        );
        for bad in [
            "patient/Observation.read?category=laboratory",
            "patient/Observation.rs?",
            "patient/Observation.rs?category",
            "patient/Observation.rs?category=%zz",
        ] {
            assert!(Scopes::parse(bad).resources.is_empty(), "{bad}");
        }
    }

    #[test]
    fn unknown_types_grant_nothing_and_other_scopes_are_kept() {
        let scopes = Scopes::parse(
            "openid fhirUser launch/patient offline_access patient/Observatio.rs patient/*.rs",
        );
        assert_eq!(
            scopes.other,
            ["openid", "fhirUser", "launch/patient", "offline_access"]
        );
        assert_eq!(scopes.refused, ["patient/Observatio.rs"]);
        assert_eq!(scopes.resources.len(), 1);
        assert_eq!(
            scopes
                .granting(Context::Patient, "Condition", Interaction::Read)
                .count(),
            1
        );
        assert_eq!(
            scopes
                .granting(Context::User, "Condition", Interaction::Read)
                .count(),
            0
        );
    }
}
