//! Test support shared by the registry tests and later integration tests (`mod support;`):
//! a real registry launcher, a token service for Bearer auth, a fault-injecting proxy, offline
//! busybox base images, and wrappers for the independent verifiers (skopeo, umoci).
#![allow(dead_code, unreachable_pub)]

pub mod busybox;
pub mod fixture;
pub mod proxy;
pub mod registry;
pub mod token;
pub mod tools;
