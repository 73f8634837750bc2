//! One import: show, create, update (relabel, interrupt) and destroy.

use super::*;

pub(super) async fn find(state: &AppState, ws: &Workspace, id: &str) -> ClResult<ImportRecord> {
    let id = import_id(id).map_err(|_| ClError::not_found())?;
    match state.store.get_import(ws.id, id).await {
        Ok(i) => Ok(i),
        Err(StoreError::NotFound(_)) => Err(ClError::not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/imports/{id}`.
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let mut fields = None;
    for (name, value) in query_pairs(query)? {
        if name == "fields[imports]" {
            fields = Some(sparse_fields(&value)?);
        } else if name == "include" {
            return Err(invalid_include(&value));
        } else {
            return Err(ClError::param(
                "PARAM_NOT_ALLOWED",
                &name,
                format!("{name} is not allowed."),
            ));
        }
    }
    let import = find(&state, &ws, &id).await?;
    one_resource(
        &state,
        &ws,
        &headers,
        &import,
        fields.as_deref(),
        StatusCode::OK,
    )
    .await
}

/// The `data` object of a JSON:API request body, checked for type (and id).
pub(super) async fn request_data(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
    id: Option<&str>,
) -> ClResult<Map<String, Value>> {
    let media = header(headers, "content-type")
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if !matches!(media.as_deref(), Some(JSONAPI | "application/json")) {
        return Err(ClError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Unsupported media type",
            format!("All requests must use the '{JSONAPI}' Content-Type."),
            json!({ "header": "Content-Type" }),
        ));
    }
    let body = parse_json(&read_body(state, request).await?)?;
    let bad = |detail: &str| {
        ClError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA_FORMAT",
            "Invalid data format",
            detail,
            json!({ "pointer": "/data" }),
        )
    };
    let Value::Object(mut top) = body else {
        return Err(bad(
            "the body must be a JSON:API document: {\"data\": {...}}",
        ));
    };
    let Some(Value::Object(data)) = top.remove("data") else {
        return Err(bad("the document has no data object"));
    };
    if data.get("type").and_then(Value::as_str) != Some("imports") {
        return Err(ClError::new(
            StatusCode::CONFLICT,
            "TYPE_MISMATCH",
            "Type mismatch",
            "data.type must be imports",
            json!({ "pointer": "/data/type" }),
        ));
    }
    if let Some(id) = id
        && data.get("id").and_then(Value::as_str) != Some(id)
    {
        return Err(ClError::new(
            StatusCode::BAD_REQUEST,
            "KEY_NOT_INCLUDED_IN_URL",
            "Key is not included in URL",
            format!("data.id must be the id of the URL ({id})"),
            json!({ "pointer": "/data/id" }),
        ));
    }
    Ok(data)
}

pub(super) fn attributes(
    data: &mut Map<String, Value>,
    allowed: &[&str],
) -> ClResult<Map<String, Value>> {
    let attrs = match data.remove("attributes") {
        None => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => {
            return Err(ClError::invalid(
                "",
                "is invalid",
                "attributes must be an object",
            ));
        }
    };
    if let Some(unknown) = attrs.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ClError::new(
            StatusCode::BAD_REQUEST,
            "PARAM_NOT_ALLOWED",
            "Param not allowed",
            format!("{unknown} is not allowed."),
            json!({ "pointer": format!("/data/attributes/{unknown}") }),
        ));
    }
    Ok(attrs)
}

/// An optional text attribute (null clears it).
pub(super) fn text_attribute(
    attrs: &Map<String, Value>,
    name: &str,
) -> ClResult<Option<Option<String>>> {
    match attrs.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ClError::invalid(
            name,
            "is invalid",
            format!("{name} must be a text of at most 255 characters"),
        )),
    }
}

pub(super) fn metadata_attribute(attrs: &Map<String, Value>) -> ClResult<Option<Value>> {
    match attrs.get("metadata") {
        None => Ok(None),
        Some(m @ Value::Object(_)) => Ok(Some(m.clone())),
        Some(_) => Err(ClError::invalid(
            "metadata",
            "is invalid",
            "metadata must be an object",
        )),
    }
}

/// `POST /api/imports`: `resource_type` (a table), `format` (`json` or `csv`), `inputs`,
/// `cleanup_records`, `skip_errors`, `reference`, `reference_origin`, `metadata`.
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> ClResult<Response> {
    let (key, ws) = authorize_key(&state, &headers, Role::Member).await?;
    let mut data = request_data(&state, &headers, request, None).await?;
    let attrs = attributes(
        &mut data,
        &[
            "resource_type",
            "format",
            "parent_resource_id",
            "inputs",
            "cleanup_records",
            "reference",
            "reference_origin",
            "metadata",
            "skip_errors",
        ],
    )?;
    if attrs
        .get("parent_resource_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ClError::invalid(
            "parent_resource_id",
            "is not supported",
            "Intake tables have no parent resources: leave parent_resource_id out",
        ));
    }
    let Some(Value::String(table)) = attrs.get("resource_type") else {
        return Err(ClError::invalid(
            "resource_type",
            "can't be blank",
            "resource_type - can't be blank (the name of a table)",
        ));
    };
    let format = match attrs.get("format") {
        None | Some(Value::Null) => "json",
        Some(Value::String(f)) if f == "json" || f == "csv" => f.as_str(),
        Some(_) => {
            return Err(ClError::invalid(
                "format",
                "is not included in the list",
                "format must be json or csv",
            ));
        }
    };
    let records = match (format, attrs.get("inputs")) {
        (_, Some(Value::Array(items))) if !items.is_empty() => Records::Json(items.clone()),
        ("csv", Some(Value::String(text))) if !text.trim().is_empty() => Records::Csv(text.clone()),
        _ => {
            return Err(ClError::invalid(
                "inputs",
                "can't be blank",
                "inputs - can't be blank (a list of records, or CSV text with format csv)",
            ));
        }
    };
    let cleanup = match attrs.get("cleanup_records") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ClError::invalid(
                "cleanup_records",
                "is invalid",
                "cleanup_records must be true or false",
            ));
        }
    };
    let has_key = match state.store.get_table(&ws, table).await {
        Ok(t) => !t.schema.primary_key.is_empty(),
        Err(StoreError::NotFound(_)) => {
            return Err(ClError::invalid(
                "resource_type",
                "is invalid",
                format!("resource_type - {table:?} is not a table of this organization"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut options: crate::api::import_options::RawOptions = BTreeMap::new();
    options.insert("table".into(), Value::String(table.clone()));
    // Commerce Layer imports create or update: by the table's key when it has one.
    options.insert(
        "mode".into(),
        Value::String(if has_key { "upsert" } else { "insert" }.into()),
    );
    options.insert("cleanup_records".into(), Value::Bool(cleanup));
    match attrs.get("skip_errors") {
        None | Some(Value::Null) | Some(Value::Bool(true)) => {
            options.insert("on_error".into(), Value::String("skip".into()));
        }
        // Commerce Layer interrupts an import whose errors pass 10% of its inputs; Intake's
        // abort policy stops it there and undoes what it wrote.
        Some(Value::Bool(false)) => {
            let inputs = match &records {
                Records::Json(items) => items.len(),
                Records::Csv(text) => text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count()
                    .saturating_sub(1),
            };
            options.insert("on_error".into(), Value::String("abort".into()));
            options.insert("max_errors".into(), json!(inputs / 10));
        }
        Some(_) => {
            return Err(ClError::invalid(
                "skip_errors",
                "is invalid",
                "skip_errors must be true or false",
            ));
        }
    }
    for name in ["reference", "reference_origin"] {
        if let Some(Some(v)) = text_attribute(&attrs, name)? {
            options.insert(name.into(), Value::String(v));
        }
    }
    if let Some(m) = metadata_attribute(&attrs)? {
        options.insert("metadata".into(), m);
    }
    let import = create_inline_import(
        &state,
        &ws,
        InlineImport {
            options,
            records,
            source: Source::Api,
            key,
        },
    )
    .await
    .map_err(|e| match e.code {
        ErrorCode::Validation => ClError::invalid("inputs", "is invalid", e.message),
        _ => e.into(),
    })?;
    one_resource(&state, &ws, &headers, &import, None, StatusCode::CREATED).await
}

/// `PATCH /api/imports/{id}`: `_interrupt: true` stops the import; `reference`,
/// `reference_origin` and `metadata` change its labels.
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Member).await?;
    let import = find(&state, &ws, &id).await?;
    let mut data = request_data(&state, &headers, request, Some(&id)).await?;
    let attrs = attributes(
        &mut data,
        &["_interrupt", "reference", "reference_origin", "metadata"],
    )?;
    let labels = ImportLabels {
        reference: text_attribute(&attrs, "reference")?,
        reference_origin: text_attribute(&attrs, "reference_origin")?,
        metadata: metadata_attribute(&attrs)?,
    };
    let interrupt = match attrs.get("_interrupt") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            return Err(ClError::invalid(
                "_interrupt",
                "is invalid",
                "_interrupt must be true",
            ));
        }
    };
    let mut current = import;
    if labels != ImportLabels::default() {
        current = state
            .store
            .relabel_import(ws.id, current.id, &labels)
            .await?;
    }
    if interrupt {
        current = match state.store.request_cancel(ws.id, current.id).await {
            Ok(i) => i,
            Err(StoreError::Refused(r @ Refusal::NotCancellable(_))) => {
                return Err(ClError::invalid(
                    "_interrupt",
                    "cannot be interrupted",
                    r.to_string(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
    }
    one_resource(&state, &ws, &headers, &current, None, StatusCode::OK).await
}

/// `DELETE /api/imports/{id}`: forgets an ended import (its records stay); 423 while it runs.
pub(super) async fn destroy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Admin).await?;
    let import = find(&state, &ws, &id).await?;
    // A two-step import waiting for its file is pending, as a queued one is: Commerce Layer
    // locks both. (The store refuses queued and running imports itself.)
    if import.status == ImportStatus::New {
        return Err(locked(
            "the import is pending (waiting for its file); interrupt it first",
        ));
    }
    let purged = match state
        .store
        .purge_import(&ws, import.id, Forget::EndedOrWaiting, false)
        .await
    {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => return Err(ClError::not_found()),
        Err(e) => return Err(e.into()),
    };
    for key in &purged.blob_keys {
        if let Err(e) = state.engine.blobs.delete(key).await {
            tracing::warn!(error = %e, key, "could not delete a deleted import's source");
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An Intake event as a Commerce Layer event resource.
pub(super) fn event_resource(i: &ImportRecord, e: &EventRecord) -> Value {
    json!({
        "id": e.id.to_string(),
        "type": "events",
        "attributes": {
            "name": e.kind,
            "created_at": millis(e.created_at),
            "updated_at": millis(e.created_at),
            "reference": null,
            "reference_origin": null,
            "metadata": e.data,
        },
        "meta": {"mode": if i.dry_run { "test" } else { "live" }},
    })
}

/// `GET /api/imports/{id}/events`: the import's lifecycle events, oldest first, paged.
pub(super) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let mut page = PageRequest {
        number: 1,
        size: DEFAULT_PAGE_SIZE,
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "page[number]" => page.number = page_value(&name, &value, u64::from(u32::MAX))?,
            "page[size]" => page.size = page_value(&name, &value, MAX_PAGE_SIZE)?,
            _ => {
                return Err(ClError::param(
                    "PARAM_NOT_ALLOWED",
                    &name,
                    format!("{name} is not allowed."),
                ));
            }
        }
    }
    let import = find(&state, &ws, &id).await?;
    let all = all_events(&state, &ws, import.id).await?;
    let start = usize::try_from((page.number - 1).saturating_mul(page.size)).unwrap_or(usize::MAX);
    let data: Vec<Value> = all
        .iter()
        .skip(start)
        .take(page.size as usize)
        .map(|e| event_resource(&import, e))
        .collect();
    let base = base_url(&headers);
    let (meta, links) = paging(
        &base,
        &format!("/api/imports/{}/events", import.id),
        &page,
        all.len() as u64,
        &[],
    );
    Ok(jsonapi(
        StatusCode::OK,
        json!({"data": data, "meta": meta, "links": links}),
    ))
}

/// `GET /api/imports/{id}/relationships/events`: the linkage of the import's events.
pub(super) async fn event_links(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ClResult<Response> {
    let ws = authorize(&state, &headers, Role::Viewer).await?;
    let import = find(&state, &ws, &id).await?;
    let all = all_events(&state, &ws, import.id).await?;
    let self_link = format!("{}/api/imports/{}", base_url(&headers), import.id);
    Ok(jsonapi(
        StatusCode::OK,
        json!({
            "data": all.iter().map(|e| json!({"type": "events", "id": e.id.to_string()})).collect::<Vec<_>>(),
            "links": {
                "self": format!("{self_link}/relationships/events"),
                "related": format!("{self_link}/events"),
            }
        }),
    ))
}
