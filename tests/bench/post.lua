-- wrk -s tests/bench/post.lua URL: POST one ~100-byte JSON message per
-- request to a JSON stream (used by tests/bench/append-rate).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"i":0,"t":1700000000000000,"pad":"' .. string.rep("x", 58) .. '"}'
