//! Cross-backend equivalence tests live in tests/tests/.
