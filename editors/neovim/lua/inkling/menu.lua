-- Inkling in the insert-mode completion menu (Neovim < 0.12, or display = 'menu').
--
-- The server sends one item whose edit carries the whole completion, several
-- lines in block mode. Vim's menu can only insert one line, so the menu shows
-- the first; when the item is accepted, the whole text replaces it and the
-- server is told (the item's command), for the local acceptance rate.

local compat = require('inkling.compat')

local M = {}

local ACCEPT_COMMAND = 'inkling.accepted'

local function run_accept_command(client, command, bufnr)
  if command and command.command == ACCEPT_COMMAND then
    compat.request(client, 'workspace/executeCommand', command, function() end, bufnr)
  end
end

local function show(client, bufnr, result, cursor, tick)
  if vim.api.nvim_get_current_buf() ~= bufnr or not vim.api.nvim_get_mode().mode:match('^i') then
    return
  end
  local now = vim.api.nvim_win_get_cursor(0)
  if vim.b[bufnr].changedtick ~= tick or now[1] ~= cursor[1] or now[2] ~= cursor[2] then
    return -- the user moved on; a newer request follows
  end
  local line = vim.api.nvim_get_current_line()
  local startcol, words = nil, {}
  for _, item in ipairs(result and (result.items or result) or {}) do
    local edit = item.textEdit
    if edit and edit.range and edit.range.start.line == cursor[1] - 1 then
      local col = compat.byte_col(line, edit.range.start.character, client.offset_encoding)
      startcol = startcol or col
      table.insert(words, {
        word = vim.split(edit.newText, '\n', { plain = true })[1],
        abbr = item.label,
        menu = '[Inkling]',
        info = edit.newText,
        icase = 1,
        dup = 1,
        user_data = {
          inkling = { client_id = client.id, new_text = edit.newText, startcol = col, command = item.command },
        },
      })
    end
  end
  if startcol and #words > 0 then
    vim.fn.complete(startcol + 1, words)
  end
end

--- Ask the server for a completion at the cursor and show it in the menu.
function M.request(client, bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.b[bufnr].changedtick
  compat.request(client, 'textDocument/completion', params, function(err, result)
    if err == nil then
      show(client, bufnr, result, cursor, tick)
    end
  end, bufnr)
end

--- CompleteDone: put in the whole text of an accepted Inkling item and tell the server.
function M.on_complete_done()
  local item = vim.v.completed_item
  local data = type(item) == 'table' and type(item.user_data) == 'table' and item.user_data.inkling
  if not data then
    return
  end
  local event = vim.v.event
  if type(event) == 'table' and event.reason ~= nil and event.reason ~= 'accept' then
    return -- cancelled or discarded (Neovim >= 0.11 tells)
  end
  local client = vim.lsp.get_client_by_id(data.client_id)
  local bufnr = vim.api.nvim_get_current_buf()
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local lines = vim.split(data.new_text, '\n', { plain = true })
  if #lines > 1 and col == data.startcol + #item.word then
    vim.api.nvim_buf_set_text(bufnr, row - 1, data.startcol, row - 1, col, lines)
    vim.api.nvim_win_set_cursor(0, { row + #lines - 1, #lines[#lines] })
  end
  if client then
    run_accept_command(client, data.command, bufnr)
  end
end

--- The keys that accept Inkling's item in the visible menu, or nil when it is not there.
function M.accept_keys()
  if vim.fn.pumvisible() == 0 then
    return nil
  end
  local info = vim.fn.complete_info({ 'items', 'selected' })
  for position, item in ipairs(info.items or {}) do
    if type(item.user_data) == 'table' and item.user_data.inkling then
      local index, keys = position - 1, ''
      if info.selected ~= index then
        local steps = info.selected == -1 and index + 1 or index - info.selected
        keys = string.rep(steps >= 0 and '<C-n>' or '<C-p>', math.abs(steps))
      end
      return keys .. '<C-y>'
    end
  end
  return nil
end

return M
