-- Neovim 0.7 to 0.12 differ in how a client is called and found; these
-- shims hide that from the rest of the plugin.

local M = {}

M.NAME = 'inkling'

function M.has(feature)
  return vim.fn.has(feature) == 1
end

-- Client methods moved from `client.request(...)` to `client:request(...)` in 0.11.
function M.request(client, method, params, handler, bufnr)
  if M.has('nvim-0.11') then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if M.has('nvim-0.11') then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- The Inkling clients attached to a buffer (or all of them).
function M.clients(bufnr)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ name = M.NAME, bufnr = bufnr })
  end
  local found = {}
  local all = bufnr and vim.lsp.buf_get_clients(bufnr) or vim.lsp.get_active_clients()
  for _, client in pairs(all) do
    if client.name == M.NAME then
      table.insert(found, client)
    end
  end
  return found
end

-- A position's character (in the client's encoding) as a byte column of `line`.
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col
  if M.has('nvim-0.11') then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  return ok and col or #line
end

return M
