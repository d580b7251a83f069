-- A different POST body for each request.
-- wrk -s dynamic.lua URL -- lines BODIES_FILE [AUTHORIZATION]
--   cycles through the file's lines, one JSON body a line (lead ids, alternating moves);
-- wrk -s dynamic.lua URL -- counter TEMPLATE_FILE [AUTHORIZATION] PREFIX
--   replaces every @KEY@ in the template with PREFIX-<thread>-<n>: a fresh idempotency key (or
--   email) each time.
-- AUTHORIZATION may list several values separated by commas (keys of several organizations):
-- the requests use them in turn.
-- A response counts as bad unless it is a 200 without a top-level GraphQL "errors" key.
local threads = {}
local counter = 0
local bodies, parts, prefix, headers
local authorizations = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1]
  headers = {["Content-Type"] = "application/json"}
  for value in string.gmatch(args[3] or "", "[^,]+") do
    table.insert(authorizations, value)
  end
  if mode == "lines" then
    bodies = {}
    for line in io.lines(args[2]) do
      if line ~= "" then table.insert(bodies, line) end
    end
  else
    local file = assert(io.open(args[2], "rb"))
    local template = file:read("*a")
    file:close()
    parts = {}
    local start = 1
    while true do
      local at = string.find(template, "@KEY@", start, true)
      if not at then break end
      table.insert(parts, string.sub(template, start, at - 1))
      start = at + 5
    end
    assert(#parts > 0, "no @KEY@ in the template")
    table.insert(parts, string.sub(template, start))
    prefix = args[4] .. "-" .. tid .. "-"
  end
  bad = 0
  sample = ""
end

function request()
  counter = counter + 1
  if #authorizations > 0 then
    headers["Authorization"] = authorizations[(counter - 1) % #authorizations + 1]
  end
  local body
  if mode == "lines" then
    body = bodies[(counter - 1) % #bodies + 1]
  else
    body = table.concat(parts, prefix .. counter)
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors":', 1, true) then
    bad = bad + 1
    if sample == "" then sample = string.sub(body, 1, 300) end
  end
end

-- A body excerpt as the inside of a JSON string.
function json_string(text)
  text = string.gsub(text, "%c", " ")
  text = string.gsub(text, "\\", "\\\\")
  return (string.gsub(text, '"', '\\"'))
end

function done(summary, latency, requests)
  local bad_total, first = 0, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    if first == "" then first = thread:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"socket_errors":%d,"status_errors":%d,"bad":%d,' ..
    '"sample":"%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status, bad_total,
    json_string(first)))
end
