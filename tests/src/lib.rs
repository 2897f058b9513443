//! End-to-end tests of Modelgate: they run the real binaries together, as users do.
//! The tests live in `tests/tests/`; shared support is in `modelgate-testkit`.
