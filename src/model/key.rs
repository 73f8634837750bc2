//! API key roles and the permissions they carry.

use serde::{Deserialize, Serialize};

/// A key's role; each role has every permission of the roles below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored or requested role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Decides revoking a key of this role by a caller who may revoke keys up to `max`.
    pub fn revoke_within(self, max: Role) -> Result<(), super::Refusal> {
        if self > max {
            return Err(super::Refusal::KeyOutranks(self));
        }
        Ok(())
    }

    /// Whether a key of this role may create a key of `other`: owners create any role,
    /// admins create roles below admin, nobody else creates keys.
    pub fn can_grant(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other < Role::Admin,
            _ => false,
        }
    }
}
