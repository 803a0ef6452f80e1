//! Every row of the reference implementation's vectors must agree with our parser, part by part.

use airgap::reference::Reference;

const VECTORS: &str = include_str!("../../testdata/image-references.tsv");

#[test]
fn every_vector_row_agrees_with_the_reference_grammar() {
    let mut lines = VECTORS.lines();
    let header = lines.next().expect("header row");
    assert_eq!(
        header,
        "input\tvalid\tnormalized_full\tdomain\tpath\ttag\tdigest\terror_kind\tdocker_ref\tfamiliar"
    );
    let mut rows = 0;
    let mut failures = Vec::new();
    for (i, line) in lines.enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 10, "row {} has {} columns", i + 2, cols.len());
        rows += 1;
        let [
            input,
            valid,
            normalized,
            domain,
            path,
            tag,
            digest,
            kind,
            docker_ref,
            familiar,
        ] = cols[..]
        else {
            unreachable!()
        };
        let got = match Reference::parse(input) {
            Ok(r) => [
                "yes".to_string(),
                r.to_string(),
                r.domain().to_string(),
                r.path().to_string(),
                r.tag().unwrap_or("").to_string(),
                r.digest().unwrap_or("").to_string(),
                String::new(),
                r.docker_ref(),
                r.familiar(),
            ],
            Err(e) => {
                assert!(!e.message.is_empty());
                [
                    "no".to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    e.kind.as_str().to_string(),
                    format!("ERR {}", e.kind),
                    String::new(),
                ]
            }
        };
        let want = [
            valid, normalized, domain, path, tag, digest, kind, docker_ref, familiar,
        ];
        if got.iter().zip(want).any(|(g, w)| g != w) {
            failures.push(format!(
                "row {} {input:?}:\n  want {want:?}\n  got  {got:?}",
                i + 2
            ));
        }
    }
    println!("checked {rows} vector rows");
    assert_eq!(
        rows, 281,
        "the vectors file changed size; update this count on purpose"
    );
    assert!(
        failures.is_empty(),
        "{} of {rows} rows disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
