//! Test support shared by the test suites of every crate, included by path
//! (`#[path = "../../../tests/support/mod.rs"] mod support;`) because the backend crates cannot
//! depend on `margin-tests`, which depends on all of them. One copy of each fixture reader and
//! comparison, so that every backend is held to the same checks.
//!
//! Each suite uses only part of it.
#![allow(dead_code)]

pub mod compare;
pub mod golden;
pub mod knn;
pub mod losses;
pub mod ref_fixtures;
