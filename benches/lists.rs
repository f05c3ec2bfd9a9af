//! Lists: mapping one Invoice Ninja list page, and rendering a list answer.
//!
//! Run: `cargo bench --bench lists`. Each group has a floor measured in the same run, so that
//! the figures read as ratios on a noisy machine:
//!
//! - `ninja_clients_page/parse_only`: serde_json reading the page into a `Value`, which any
//!   mapping of v4's JSON must do; `map`: the adapter's whole mapping of the page (parse, then
//!   20 clients into records), as a list's fast path runs it.
//! - `render_list/serialize_only`: serde_json writing the 20 records; `render`: the gateway's
//!   whole list answer (body with `meta`, `Link` header).
//!
//! The page (`fixtures/ninja-clients-page.json`, 20 clients as v4 sends them) is the one the
//! load script (`benches/load.sh`) serves from nginx.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nestgate::http::resources::list_response;
use nestgate_contract::ListQuery;
use serde_json::Value;
use std::hint::black_box;

const PAGE: &[u8] = include_bytes!("fixtures/ninja-clients-page.json");

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ninja_clients_page");
    group.throughput(Throughput::Elements(20));
    group.bench_function("parse_only", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(PAGE)).unwrap())
    });
    group.bench_function("map", |b| {
        b.iter(|| nestgate_invoiceninja::map_clients_page(black_box(PAGE)).unwrap())
    });
    group.finish();

    let page = nestgate_invoiceninja::map_clients_page(PAGE).unwrap();
    assert_eq!(page.records.len(), 20);
    let query = ListQuery::default();
    let mut group = c.benchmark_group("render_list");
    group.throughput(Throughput::Elements(20));
    group.bench_function("serialize_only", |b| {
        b.iter(|| serde_json::to_vec(black_box(&page.records)).unwrap())
    });
    group.bench_function("render", |b| {
        b.iter(|| list_response(black_box(&page), &query, "/api/v1/clients", Some("page=1")))
    });
    group.finish();
}

criterion_group!(lists, benches);
criterion_main!(lists);
