-- The one wrk script of the HTTP benchmarks.
-- Arguments: a request file (one "METHOD<TAB>path<TAB>body" per line; body may be empty) and an optional
-- bearer token. Requests are formatted once, then sent in turn; done() prints one JSON line of figures.

local requests = {}
local counter = 0

function init(args)
  local headers = { ["Accept"] = "application/fhir+json" }
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
    if body ~= nil and body ~= "" then
      local with_body = { ["Content-Type"] = "application/fhir+json" }
      for name, value in pairs(headers) do with_body[name] = value end
      requests[#requests + 1] = wrk.format(method, path, with_body, body)
    elseif method ~= nil then
      requests[#requests + 1] = wrk.format(method, path, headers)
    end
  end
  assert(#requests > 0, "no requests in " .. args[1])
end

function request()
  counter = counter % #requests + 1
  return requests[counter]
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.connect + errors.read + errors.write + errors.timeout,
    errors.status, latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
