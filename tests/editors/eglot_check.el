;;; eglot_check.el --- Inkling in a real Emacs through eglot (run by test_emacs.py)  -*- lexical-binding: t -*-
;; Environment: INKLING_PYTHON, INKLING_FILE (a Python file), INKLING_RESULT (JSON written here).
;; For each (line . text-typed) it asks Inkling through eglot as a user's
;; `completion-at-point' would, and records the item the server sent and the
;; line(s) that ended up in the buffer.
(require 'eglot)
(require 'json)
(setq jsonrpc-default-request-timeout 120) ; a shared CI machine; the model may be slow
(setq eglot-server-programs
      `((python-mode . (,(getenv "INKLING_PYTHON") "-m" "lsp_server" "serve"
                        :initializationOptions (:timeBudgetInlineMs 60000 :timeBudgetBlockMs 60000)))))

(defun inkling-wait (pred what seconds)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.1))
    (unless (funcall pred) (error "timed out waiting for %s" what))))

(defun inkling-item-here (server)
  "The completion item Inkling sends for point (asked directly, for comparison)."
  (let* ((result (jsonrpc-request server :textDocument/completion (eglot--TextDocumentPositionParams)))
         (items (if (vectorp result) result (plist-get result :items))))
    (and (> (length items) 0) (aref items 0))))

(defun inkling-complete-at-end-of-line (server line)
  (goto-char (point-min))
  (forward-line (1- line))
  (end-of-line)
  (let* ((item (inkling-item-here server))
         (start (line-beginning-position)))
    (completion-at-point)
    `((newText . ,(plist-get (plist-get item :textEdit) :newText))
      (buffer . ,(buffer-substring-no-properties start (line-end-position 20))))))

(find-file (getenv "INKLING_FILE"))
(python-mode)
(eglot-ensure)
(run-hooks 'post-command-hook) ; eglot-ensure connects after the next command
(inkling-wait #'eglot-current-server "eglot to connect" 60)
(let ((server (eglot-current-server)))
  (inkling-wait (lambda () (member (plist-get (jsonrpc-request server :inkling/status nil) :state) '("ready" "failed")))
                "the model" 180)
  (let ((results `((line . ,(inkling-complete-at-end-of-line server (string-to-number (getenv "INKLING_LINE"))))
                   (block . ,(inkling-complete-at-end-of-line server (string-to-number (getenv "INKLING_BLOCK_LINE"))))
                   (client . ,(emacs-version)))))
    (with-temp-file (getenv "INKLING_RESULT") (insert (json-encode results))))
  (eglot-shutdown server))
