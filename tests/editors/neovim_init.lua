-- The README's Neovim setup, with this checkout's paths (set by the test through the environment).
vim.opt.runtimepath:append(os.getenv('INKLING_ROOT') .. '/editors/neovim')
vim.o.completeopt = 'menuone,noinsert'
vim.o.swapfile = false
if os.getenv('INKLING_TEST_WITHOUT_LSP_CONFIG') then
  -- Take the branch Neovim 0.8 to 0.10 take (vim.lsp.start), in a newer Neovim.
  vim.lsp.config, vim.lsp.enable = nil, nil
end
require('inkling').setup({
  cmd = { os.getenv('INKLING_PYTHON'), '-m', 'lsp_server', 'serve' },
  -- Generous budgets: the CI machine is shared; this test is about the editor, not speed.
  settings = { timeBudgetInlineMs = 60000, timeBudgetBlockMs = 60000 },
})
