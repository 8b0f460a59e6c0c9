-- wrk -s tests/bench/read.lua URL: catch-up reads at random offsets.
-- Environment: OFFSETS=FILE (one offset per line; each request reads
-- URL?offset=<a random one>), or RANGE_SIZE=N with RANGE_SPAN=M (each request
-- asks a static file for N bytes at a random multiple of N below M).
-- Headers given with wrk -H (e.g. -H 'Authorization: Bearer TOKEN') go with
-- every request. done() prints "bytes_per_read=..." for tests/bench/run.
local offsets = {}
local rsize = tonumber(os.getenv("RANGE_SIZE") or "0")
local rspan = tonumber(os.getenv("RANGE_SPAN") or "0")

function init(args)
	local f = os.getenv("OFFSETS")
	if f then
		for line in io.lines(f) do
			if #line > 0 then offsets[#offsets + 1] = line end
		end
	end
	math.randomseed(os.time() + math.floor(os.clock() * 1e6) + (args[1] and #args[1] or 0))
end

function request()
	if rsize > 0 then
		local k = math.random(0, math.floor(rspan / rsize) - 1)
		local h = { ["Range"] = "bytes=" .. (k * rsize) .. "-" .. (k * rsize + rsize - 1) }
		for name, value in pairs(wrk.headers) do h[name] = h[name] or value end
		return wrk.format("GET", nil, h)
	end
	return wrk.format("GET", wrk.path .. "?offset=" .. offsets[math.random(1, #offsets)])
end

function done(summary, latency, requests)
	local n = summary.requests
	io.write(string.format("bytes_per_read=%.0f\n", n > 0 and summary.bytes / n or 0))
end
