//! The shortest path a newcomer takes: start, create a table, upload, read the rows.

use crate::common;

use common::{TestServer, send};
use serde_json::json;

#[tokio::test]
async fn a_csv_upload_lands_as_typed_rows() {
    let s = TestServer::start().await;
    s.create_table(json!({
        "name": "people",
        "columns": [
            {"name": "id", "type": "integer", "required": true},
            {"name": "name", "type": "string"},
            {"name": "score", "type": "float"}
        ],
        "primary_key": ["id"]
    }))
    .await;
    let (status, body) = s
        .upload(
            "table=people&file_name=people.csv",
            "text/csv",
            "id,name,score\n1,Ann,1.5\n2,Bob,x\n3,\"Cy, Jr\",2\n",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = s.wait_done(&id).await;
    assert_eq!(done["status"], "partially_complete");
    assert_eq!(done["file_name"], "people.csv");
    assert_eq!(done["counts"]["created"], 2);
    assert_eq!(done["counts"]["invalid"], 1);
    let rows = s.all_records("people").await;
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "name": "Ann", "score": 1.5}),
            json!({"id": 3, "name": "Cy, Jr", "score": 2.0})
        ]
    );
    let (_, errors) = send(s.get(&format!("/v1/imports/{id}/errors"))).await;
    assert_eq!(errors["data"][0]["line"], 3);
    assert_eq!(errors["data"][0]["code"], "invalid_float");
    s.stop().await;
}
