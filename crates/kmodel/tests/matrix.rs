//! `mmcid matrix` spreads its runs over threads: the table must not depend on how many, nor on
//! the order in which runs finish.

use mmcid_kmodel::checker::CheckOptions;
use mmcid_kmodel::matrix::{self, Matrix};

fn table(m: &Matrix) -> String {
    m.rows
        .iter()
        .map(|r| {
            format!(
                "{} {:?} capped {:?} errors {:?}\n",
                r.design, r.cells, r.capped, r.errors
            )
        })
        .collect()
}

#[test]
fn the_table_is_the_same_on_one_thread_and_on_three() {
    // Small configurations and a small cap, so that some runs are capped and some find
    // violations (6.19-rc7 has several) while others hold.
    let grid: Vec<_> = matrix::default_grid().into_iter().take(5).collect();
    let designs = ["6.19-rc7", "7.0+fixes", "6.3"];
    let run = |workers| {
        let base = CheckOptions {
            workers,
            ..CheckOptions::default()
        };
        matrix::run(&designs, &grid, 20_000, &base, &mut |_| {})
    };
    let one = run(1);
    let three = run(3);
    assert_eq!(one.threads, 1);
    assert_eq!(three.threads, 3);
    assert_eq!(one.rows.len(), 3);
    assert!(one.rows.iter().any(|r| !r.capped.is_empty()), "{}", table(&one));
    assert!(table(&one).contains("Violated"), "{}", table(&one));
    assert_eq!(table(&one), table(&three));
}
