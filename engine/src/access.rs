//! Access control around the REST service: what a request's verified claims (SMART scopes,
//! the launch patient, the user and their roles) let it do.
//!
//! [`scope`] reads SMART v1 and v2 scopes. The rest of the access layer (the decisions on each
//! interaction, the patient compartment, roles, and the audit trail) is built on it.

pub mod scope;
