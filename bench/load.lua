-- load.lua: the request mix of bench/load.sh for wrk. Four reads
-- (GET /v1/jobs, /v1/health, /v1/models/{id}, /v1/jobs/{id}/metrics?limit=50)
-- and one classify (POST a 28x28 PNG as image/png) in every five requests.
-- LOAD_MODEL (the trained job's id) and LOAD_PNG (the image file) come from
-- the environment. done() prints one machine-readable line for load.sh.
local model = os.getenv("LOAD_MODEL") or "1"
local f = assert(io.open(os.getenv("LOAD_PNG") or "digit.png", "rb"))
local png = f:read("*a")
f:close()

local reqs = {}
local n = 0

function init(args)
  reqs[1] = wrk.format("GET", "/v1/jobs")
  reqs[2] = wrk.format("GET", "/v1/health")
  reqs[3] = wrk.format("GET", "/v1/models/" .. model)
  reqs[4] = wrk.format("GET", "/v1/jobs/" .. model .. "/metrics?limit=50")
  reqs[5] = wrk.format("POST", "/v1/models/" .. model .. "/classify",
                       { ["Content-Type"] = "image/png" }, png)
end

function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk: requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
                         "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
                         summary.requests, summary.duration,
                         latency:percentile(50), latency:percentile(99),
                         e.status, e.connect, e.read, e.write, e.timeout))
end
