DROP INDEX `login_attempts_email_time` ON `login_attempts`;--> statement-breakpoint
ALTER TABLE `login_attempts` ADD `client_address` varchar(64) NOT NULL;--> statement-breakpoint
CREATE INDEX `login_attempts_account_address_time` ON `login_attempts` (`email`,`client_address`,`attempted_at`);--> statement-breakpoint
CREATE INDEX `login_attempts_time` ON `login_attempts` (`attempted_at`);