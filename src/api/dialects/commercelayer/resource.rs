//! The import as a JSON:API resource: its attributes, `errors_log` and `warnings_log`.

use super::*;

/// What a resource needs beyond the import: its tables' keys, row errors and warnings.
pub(super) struct Extras<'a> {
    pub(super) keys: &'a BTreeMap<String, Vec<String>>,
    pub(super) errors: Vec<StoredRowError>,
    pub(super) warnings: Vec<EventRecord>,
}

/// An input's identifier in `errors_log`: its values of the table's primary key, else its
/// `code` or `id`, else its record number.
pub(super) fn identifier(row: &Value, key: &[String], record: u64) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    };
    if !key.is_empty() {
        let parts: Option<Vec<String>> = key.iter().map(|k| row.get(k).and_then(text)).collect();
        if let Some(parts) = parts {
            return parts.join(",");
        }
    }
    ["code", "id"]
        .iter()
        .find_map(|k| row.get(*k).and_then(text))
        .unwrap_or_else(|| record.to_string())
}

pub(super) fn errors_log(extras: &Extras<'_>) -> Value {
    let mut log: Map<String, Value> = Map::new();
    for e in &extras.errors {
        let key = extras.keys.get(&e.table).map_or(&[][..], |k| &k[..]);
        let ident = identifier(&e.error.row, key, e.error.record);
        let column = e.error.column.clone().unwrap_or_else(|| "base".to_owned());
        let entry = log
            .entry(ident)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(columns) = entry
            && let Value::Array(messages) = columns
                .entry(column)
                .or_insert_with(|| Value::Array(Vec::new()))
        {
            messages.push(Value::String(e.error.message.clone()));
        }
    }
    Value::Object(log)
}

/// Warnings (fields that match no column) keyed by the table they concern.
pub(super) fn warnings_log(i: &ImportRecord, warnings: &[EventRecord]) -> Value {
    let mut log: Map<String, Value> = Map::new();
    for w in warnings {
        let table = w
            .data
            .get("table_position")
            .and_then(Value::as_u64)
            .and_then(|p| i.tables.iter().find(|t| u64::from(t.position) == p))
            .map_or_else(|| "base".to_owned(), |t| t.table.clone());
        let message = w
            .data
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("warning")
            .to_owned();
        if let Value::Array(list) = log.entry(table).or_insert_with(|| Value::Array(Vec::new())) {
            list.push(Value::String(message));
        }
    }
    Value::Object(log)
}

/// The import as a JSON:API resource object; `fields` restricts attributes (sparse
/// fieldsets).
pub(super) fn resource(
    base: &str,
    i: &ImportRecord,
    extras: &Extras<'_>,
    fields: Option<&[String]>,
) -> Value {
    let ts = |t: Option<time::OffsetDateTime>| t.map(millis);
    let stopped = match i.status {
        ImportStatus::Cancelled => i.cancelled_at,
        ImportStatus::RolledBack => i.rolled_back_at,
        ImportStatus::Failed | ImportStatus::Unsupported => i.completed_at,
        _ => None,
    };
    let all = [
        (
            "resource_type",
            json!(i.tables.first().map(|t| t.table.clone())),
        ),
        (
            "format",
            json!(i.tables.first().map(|t| format_of(&t.format))),
        ),
        ("parent_resource_id", Value::Null),
        ("status", json!(status(i.status))),
        ("started_at", json!(ts(i.started_at))),
        ("completed_at", json!(ts(i.completed_at))),
        ("interrupted_at", json!(ts(stopped))),
        // Sources are not kept once an import ends, and lists never echo them.
        ("inputs", Value::Null),
        ("inputs_size", json!(i.counts.inputs)),
        ("errors_count", json!(i.counts.invalid)),
        ("warnings_count", json!(i.counts.warnings)),
        ("destroyed_count", json!(i.counts.destroyed)),
        ("processed_count", json!(i.counts.processed)),
        ("errors_log", errors_log(extras)),
        ("warnings_log", warnings_log(i, &extras.warnings)),
        ("cleanup_records", json!(i.cleanup_records)),
        ("attachment_url", Value::Null),
        ("created_at", json!(millis(i.created_at))),
        ("updated_at", json!(millis(i.updated_at))),
        ("reference", json!(i.reference)),
        ("reference_origin", json!(i.reference_origin)),
        ("metadata", i.metadata.clone()),
    ];
    let wanted = |name: &str| fields.is_none_or(|f| f.iter().any(|n| n == name));
    let attributes: Map<String, Value> = all
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .map(|(name, v)| (name.to_owned(), v))
        .collect();
    let self_link = format!("{base}/api/imports/{}", i.id);
    let mut object = json!({
        "id": i.id,
        "type": "imports",
        "links": {"self": self_link},
        "attributes": attributes,
    });
    if wanted("events") {
        object["relationships"] = json!({
            "events": {
                "links": {
                    "self": format!("{self_link}/relationships/events"),
                    "related": format!("{self_link}/events"),
                }
            }
        });
    }
    object["meta"] = json!({"mode": if i.dry_run { "test" } else { "live" }});
    object
}

/// Each table's primary key columns, by table name.
pub(super) async fn table_keys(
    state: &AppState,
    ws: &Workspace,
) -> ClResult<BTreeMap<String, Vec<String>>> {
    Ok(state
        .store
        .list_tables(ws)
        .await?
        .into_iter()
        .map(|t| {
            (
                t.schema.name.as_str().to_owned(),
                t.schema
                    .primary_key
                    .iter()
                    .map(|k| k.as_str().to_owned())
                    .collect(),
            )
        })
        .collect())
}

/// An import's warning events.
pub(super) async fn warning_events(
    state: &AppState,
    ws: &Workspace,
    i: &ImportRecord,
) -> ClResult<Vec<EventRecord>> {
    if i.counts.warnings == 0 {
        return Ok(Vec::new());
    }
    Ok(all_events(state, ws, i.id)
        .await?
        .into_iter()
        .filter(|e| e.kind == "import.warning")
        .collect())
}

/// An import's events, oldest first (at most [`MAX_EVENTS`]).
pub(super) async fn all_events(
    state: &AppState,
    ws: &Workspace,
    id: uuid::Uuid,
) -> ClResult<Vec<EventRecord>> {
    let read = |after, limit| state.store.list_events(ws.id, id, after, limit);
    Ok(read_up_to(MAX_EVENTS, |e: &EventRecord| e.id, read).await?)
}

/// The resource of one import, with its errors and warnings read.
/// Answers one import as a JSON:API document (show, create and update answer alike).
pub(super) async fn one_resource(
    state: &AppState,
    ws: &Workspace,
    headers: &HeaderMap,
    import: &ImportRecord,
    fields: Option<&[String]>,
    status: StatusCode,
) -> ClResult<Response> {
    let keys = table_keys(state, ws).await?;
    let data = full_resource(
        state,
        ws,
        &base_url(headers),
        &keys,
        import,
        SHOW_ERRORS,
        fields,
    )
    .await?;
    Ok(jsonapi(status, json!({ "data": data })))
}

pub(super) async fn full_resource(
    state: &AppState,
    ws: &Workspace,
    base: &str,
    keys: &BTreeMap<String, Vec<String>>,
    i: &ImportRecord,
    max_errors: u32,
    fields: Option<&[String]>,
) -> ClResult<Value> {
    let errors = if i.counts.invalid > 0 {
        row_errors(state, ws.id, i.id, max_errors).await?
    } else {
        Vec::new()
    };
    let extras = Extras {
        keys,
        errors,
        warnings: warning_events(state, ws, i).await?,
    };
    Ok(resource(base, i, &extras, fields))
}
