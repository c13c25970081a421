//! Nile minima (Beran 1994, dataset 1): Whittle estimates against the R
//! package longmemo's `WhittleEst` outputs printed in man/WhittleEst.Rd:
//! fGn H = 0.837, FARIMA(0,d,0) H = 0.899.
use selfsim::estimators::{whittle_farima, whittle_fgn, WhittleConfig};

mod common;

#[test]
fn nile_whittle_matches_longmemo() {
    let Some(dir) = common::lrd_dir() else {
        return;
    };
    let x = selfsim::read_values(dir.join("longmemo/NileMin_622-1284.txt")).unwrap();
    assert_eq!(x.len(), 663);
    let fgn = whittle_fgn(&x, &WhittleConfig::default()).unwrap();
    let far = whittle_farima(&x, &WhittleConfig::default()).unwrap();
    println!(
        "Nile: whittle-fgn H = {:.4} (s.e. {:?}), whittle-farima H = {:.4} (s.e. {:?})",
        fgn.h, fgn.std_err, far.h, far.std_err
    );
    assert!((fgn.h - 0.837).abs() <= 0.005, "fGn H = {}", fgn.h);
    assert!((far.h - 0.899).abs() <= 0.005, "FARIMA H = {}", far.h);
    // Fisher-information s.e. of a Whittle fit at N = 663 is a few hundredths
    // (FARIMA: sqrt(6 / (pi^2 N)) = 0.030 asymptotically).
    let se = far.std_err.unwrap();
    assert!(
        (se - (6.0 / (std::f64::consts::PI.powi(2) * 663.0)).sqrt()).abs() < 0.005,
        "se {se}"
    );
}
