//! Array helpers shared by layers, rules and the network, one module per job.

pub(crate) mod batch;
pub(crate) mod broadcast;
pub(crate) mod checks;
pub(crate) mod layout;
pub(crate) mod numerics;
