//! What the fuzz tests do with their mutants, counted: how many loaded, how many of those
//! ran and explained, and every error by kind. A fuzz test asserts on the counts after its
//! last case (a minimum share of mutants must load, so that the mutations reach the code
//! after the decoder; every loaded network must run and explain or fail with a typed error
//! of an expected kind) and prints them.

use ndarray::ArrayD;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestRunner};
use relevance::{Composite, Error, Network, Target};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

/// The counts of one fuzz target.
#[derive(Debug, Default)]
pub struct Tally {
    /// Mutants tried (every loader call of a case counts once).
    pub tried: usize,
    /// Mutants a loader accepted.
    pub loaded: usize,
    /// Of those, data files (digits, arrays): accepted, nothing to run.
    pub data: usize,
    /// Loaded networks whose input is too large to run here (more than 2^16 values).
    pub too_large: usize,
    /// Loaded networks whose forward pass succeeded.
    pub ran: usize,
    /// Loaded networks whose explanation succeeded (finite, the input's shape).
    pub explained: usize,
    /// Refusals by the loader, by error kind.
    pub refused: BTreeMap<String, usize>,
    /// Errors of loaded networks (forward pass or explanation), by error kind.
    pub failed: BTreeMap<String, usize>,
}

/// An error's kind: the variant of its root cause, with the wrappers that carry it.
pub fn kind(e: &Error) -> String {
    let name = |e: &Error| {
        let d = format!("{e:?}");
        d.split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_string()
    };
    let (outer, root) = (name(e), name(e.root()));
    if outer == root {
        root
    } else {
        format!("{outer}/{root}")
    }
}

impl Tally {
    /// Counts a loader's result; a loaded network is run and explained.
    pub fn load(&mut self, result: relevance::Result<Network<f32>>) {
        self.tried += 1;
        match result {
            Ok(net) => {
                self.loaded += 1;
                self.exercise(&net);
            }
            Err(e) => *self.refused.entry(kind(&e)).or_default() += 1,
        }
    }

    /// Counts a loader's result for a loader without a network (a data file).
    pub fn read<T>(&mut self, result: relevance::Result<T>) {
        self.tried += 1;
        match result {
            Ok(_) => {
                self.loaded += 1;
                self.data += 1;
            }
            Err(e) => *self.refused.entry(kind(&e)).or_default() += 1,
        }
    }

    /// Runs a loaded network on a constant input (0.25, or id 0 for a network with an
    /// embedding lookup) and explains class 0 with a composite; an
    /// explanation must be finite and shaped as the input. Errors are counted by kind.
    fn exercise(&mut self, net: &Network<f32>) {
        let mut shape = vec![1];
        shape.extend(net.input_shape());
        if shape.iter().product::<usize>() > 1 << 16 {
            self.too_large += 1;
            return;
        }
        // a token model takes ids: 0 is one in any vocabulary
        let ids = net.nodes().iter().any(|n| {
            n.layer()
                .is_some_and(|l| matches!(l.class(), relevance::Class::Embedding(_)))
        });
        let x = ArrayD::<f32>::from_elem(shape, if ids { 0.0 } else { 0.25 });
        match net.forward(&x) {
            Ok(_) => self.ran += 1,
            Err(e) => {
                *self.failed.entry(format!("forward {}", kind(&e))).or_default() += 1;
                return;
            }
        }
        match net.attribute(&x, &Target::Class(0), &Composite::epsilon_plus_flat()) {
            Ok(a) => {
                assert_eq!(a.relevance.shape(), x.shape(), "relevance of a loaded network");
                assert!(
                    a.relevance.iter().all(|v| v.is_finite()),
                    "an explanation reported as fine is not finite"
                );
                self.explained += 1;
            }
            Err(e) => *self.failed.entry(format!("explain {}", kind(&e))).or_default() += 1,
        }
    }

    /// Asserts that at least `min_share` of the mutants loaded, that every loaded network
    /// was run and explained or failed with an error of one of the `allowed` kinds, and
    /// prints the counts.
    pub fn check(&self, name: &str, min_share: f64, allowed: &[&str]) {
        println!("{name}: {self}");
        let share = self.loaded as f64 / self.tried.max(1) as f64;
        assert!(
            share >= min_share,
            "{name}: only {} of {} mutants loaded ({:.1} %, at least {:.1} % expected): {self}",
            self.loaded,
            self.tried,
            100.0 * share,
            100.0 * min_share
        );
        let failed: usize = self.failed.values().sum();
        let run_failures: usize = self
            .failed
            .iter()
            .filter(|(k, _)| k.starts_with("forward"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            self.ran + run_failures + self.too_large + self.data,
            self.loaded,
            "{name}: every loaded network is run"
        );
        assert_eq!(
            self.explained + failed,
            self.ran + run_failures,
            "{name}: every network that ran is explained"
        );
        for k in self.failed.keys() {
            // "forward AtLayer/NonFiniteResult": the root cause's kind is the last word
            let root = k.rsplit(['/', ' ']).next().unwrap();
            assert!(
                allowed.contains(&root),
                "{name}: a loaded network failed with {k}, not one of {allowed:?}: {self}"
            );
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mutants, {} loaded ({} data files, {} networks too large to run), {} ran, {} explained; \
             refused: {:?}; loaded but failed: {:?}",
            self.tried,
            self.loaded,
            self.data,
            self.too_large,
            self.ran,
            self.explained,
            self.refused,
            self.failed
        )
    }
}

/// Runs `case` on `cases` values of `strategy` (random, as `proptest!`; a failing case is
/// shrunk and reported) and returns the tally the cases filled.
pub fn run<S: Strategy>(cases: u32, strategy: S, case: impl Fn(S::Value, &mut Tally)) -> Tally
where
    S::Value: fmt::Debug,
{
    let tally = RefCell::new(Tally::default());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, |v| {
        case(v, &mut tally.borrow_mut());
        Ok(())
    }) {
        panic!("{e}");
    }
    tally.into_inner()
}
