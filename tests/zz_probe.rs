mod common;
use common::*;
use serde_json::{json, Value};

async fn imp(s: &TestServer, q: &str, ct: &str, body: impl Into<reqwest::Body>) -> Value {
    let (st, b) = s.upload(q, ct, body).await;
    if st != 202 { println!("  -> {st} {b}"); return b; }
    let d = s.wait_done(b["id"].as_str().unwrap()).await;
    println!("  -> {} counts={} error={}", d["status"], d["counts"], d["error"]);
    let errs = s.all_errors(b["id"].as_str().unwrap()).await;
    for e in errs.iter().take(5) { println!("     err {} {} {} {} {}", e["line"], e["record"], e["code"], e["column"], e["message"]); }
    d
}
fn people(n: &str) -> Value { json!({"name": n, "columns": [{"name":"id","type":"integer","required":true},{"name":"name","type":"string"}], "primary_key":["id"]}) }

#[tokio::test]
async fn probe() {
    let s = TestServer::start().await;
    println!("(a) dry run cleanup");
    s.create_table(people("a")).await;
    imp(&s, "table=a", "text/csv", "id,name\n1,A\n2,B\n3,C\n").await;
    imp(&s, "table=a&mode=upsert&cleanup_records=true&dry_run=true", "text/csv", "id,name\n1,A\n2,B2\n4,D\n").await;
    println!("   rows {:?}", s.all_records("a").await);
    println!("(b) unsupported replay");
    for _ in 0..2 {
        let r = s.post("/v1/imports?table=a").header("content-type","text/csv").header("idempotency-key","png").body(b"\x89PNG\r\n\x1a\n\0\0".to_vec()).send().await.unwrap();
        println!("  -> {} {:?}", r.status(), r.text().await.unwrap());
    }
    println!("(c) cleanup with invalid row of existing key");
    s.create_table(json!({"name": "c", "columns": [{"name":"id","type":"integer","required":true},{"name":"n","type":"integer"}], "primary_key":["id"]})).await;
    imp(&s, "table=c", "text/csv", "id,n\n1,1\n2,2\n3,3\n").await;
    imp(&s, "table=c&mode=upsert&cleanup_records=true", "text/csv", "id,n\n1,1\n2,oops\n3,3\n").await;
    println!("   rows {:?}", s.all_records("c").await);
    println!("(d) invalid utf8");
    s.create_table(people("d")).await;
    imp(&s, "table=d", "text/csv", b"id,name\n1,caf\xE9\n2,ok\n".to_vec()).await;
    println!("(e) dry run atomic");
    s.create_table(people("e")).await;
    imp(&s, "table=e&dry_run=true&on_error=atomic", "text/csv", "id,name\n1,A\nx,B\n").await;
    imp(&s, "table=e&dry_run=true&on_error=abort", "text/csv", "id,name\n1,A\nx,B\n").await;
    println!("(f) two replaces, unique col");
    s.create_table(json!({"name": "f", "columns": [{"name":"id","type":"integer","required":true},{"name":"email","type":"email","unique":true}], "primary_key":["id"]})).await;
    imp(&s, "table=f&mode=replace", "text/csv", "id,email\n1,a@x.io\n").await;
    imp(&s, "table=f&mode=replace", "text/csv", "id,email\n1,a@x.io\n2,b@x.io\n").await;
    imp(&s, "table=f", "text/csv", "id,email\n3,a@x.io\n").await;
    imp(&s, "table=f&mode=replace&dry_run=true", "text/csv", "id,email\n1,a@x.io\n2,a@x.io\n").await;
    println!("   rows {:?}", s.all_records("f").await);
    println!("(g) ndjson unknown keys");
    s.create_table(people("g")).await;
    imp(&s, "table=g", "application/x-ndjson", "{\"id\":1,\"zz\":1}\n{\"id\":2,\"zz\":2,\"yy\":3}\n").await;
    println!("(h) no header");
    s.create_table(people("h")).await;
    imp(&s, "table=h&has_header=false", "text/csv", "1,Ann\nx,Bob\n").await;
    println!("(i) empty / header only");
    s.create_table(people("i")).await;
    imp(&s, "table=i", "text/csv", "").await;
    imp(&s, "table=i", "text/csv", "id,name\n").await;
    imp(&s, "table=i", "application/x-ndjson", "").await;
    imp(&s, "table=i", "application/json", "[]").await;
    imp(&s, "table=i", "application/json", "").await;
    println!("(j) errors csv with line column");
    s.create_table(json!({"name": "j", "columns": [{"name":"id","type":"integer","required":true},{"name":"line","type":"string"}]})).await;
    let d = imp(&s, "table=j", "text/csv", "id,line,error\nx,L,E\n").await;
    let t = s.get(&format!("/v1/imports/{}/errors?format=csv", d["id"].as_str().unwrap())).send().await.unwrap().text().await.unwrap();
    println!("{t}");
    println!("(k) dup header");
    imp(&s, "table=i", "text/csv", "id,name,name\n1,a,b\n").await;
    println!("(l) missing required column in header");
    imp(&s, "table=i", "text/csv", "name\nAnn\n").await;
    println!("(m) skip max_errors");
    imp(&s, "table=i&max_errors=1", "text/csv", "id,name\n5,A\nx,B\ny,C\n6,D\n").await;
    println!("   rows {:?}", s.all_records("i").await);
    println!("(n) atomic replace bad");
    imp(&s, "table=i&mode=replace&on_error=atomic", "text/csv", "id,name\n7,A\nx,B\n").await;
    imp(&s, "table=i&mode=replace&on_error=abort", "text/csv", "id,name\n7,A\nx,B\n").await;
    println!("   rows {:?}", s.all_records("i").await);
    println!("(o) ndjson crlf + bom, json bom");
    s.create_table(people("o")).await;
    imp(&s, "table=o", "application/x-ndjson", b"\xEF\xBB\xBF{\"id\":1}\r\n{\"id\":\"x\"}\r\n".to_vec()).await;
    imp(&s, "table=o", "application/json", b"\xEF\xBB\xBF[{\"id\":2}]".to_vec()).await;
    imp(&s, "table=o", "text/plain", "{\"id\":3}\n").await;
    imp(&s, "table=o", "text/plain", "[{\"id\":4}]\n").await;
}
